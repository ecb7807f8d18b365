//! A bounded source over an in-memory collection (Flink's `fromCollection`), parallelism 1.

use super::{Source, SourceContext, SourceReader, SourceStatus};
use crate::api::data::Data;
use crate::Result;
use std::sync::Arc;

/// Emits the elements of a `Vec` in order; its position is the next index.
pub struct CollectionSource<T>(pub(crate) Arc<Vec<T>>);

impl<T: Data + Sync> Source<T> for CollectionSource<T> {
    fn name(&self) -> String {
        "Collection Source".into()
    }
    fn max_parallelism(&self) -> Option<u32> {
        Some(1)
    }
    fn create(&self, ctx: SourceContext) -> Result<Box<dyn SourceReader<T>>> {
        // Parallelism 1: the one position there is (empty positions come from instances that
        // never read; the collection source always has exactly one reader).
        let next = match ctx
            .restored
            .as_ref()
            .and_then(|all| all.iter().find(|b| !b.is_empty()))
        {
            Some(b) => u64::from_le_bytes(
                b.as_slice()
                    .try_into()
                    .map_err(|_| crate::anyhow!("corrupt collection source position"))?,
            ) as usize,
            None => 0,
        };
        Ok(Box::new(CollectionReader {
            items: Arc::clone(&self.0),
            next,
        }))
    }
}

struct CollectionReader<T> {
    items: Arc<Vec<T>>,
    next: usize,
}

impl<T: Clone> SourceReader<T> for CollectionReader<T> {
    fn poll_next(&mut self, out: &mut Vec<T>, max: usize) -> Result<SourceStatus> {
        // A restored position past the end (a shorter collection) means nothing is left.
        self.next = self.next.min(self.items.len());
        let end = (self.next + max).min(self.items.len());
        out.extend_from_slice(&self.items[self.next..end]);
        self.next = end;
        Ok(if end == self.items.len() {
            SourceStatus::Finished
        } else {
            SourceStatus::Ready
        })
    }
    fn snapshot(&mut self) -> Result<Vec<u8>> {
        Ok((self.next as u64).to_le_bytes().to_vec())
    }
}
