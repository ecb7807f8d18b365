//! A sink that counts and drops records, for benchmarks.

use super::{Sink, SinkWriter};
use crate::api::functions::TaskInfo;
use crate::Result;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The number of records a discarding sink received, over all attempts.
#[derive(Clone, Default)]
pub struct CountHandle(Arc<AtomicU64>);

impl CountHandle {
    /// Records received so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub(crate) struct DiscardSink(pub CountHandle);

impl<T: 'static> Sink<T> for DiscardSink {
    fn name(&self) -> String {
        "Discard".into()
    }
    fn create(&self, _info: &TaskInfo) -> Result<Box<dyn SinkWriter<T>>> {
        Ok(Box::new(DiscardWriter(self.0.clone())))
    }
}

struct DiscardWriter(CountHandle);

impl<T> SinkWriter<T> for DiscardWriter {
    #[inline]
    fn write_batch(&mut self, batch: &mut Vec<T>) -> Result<()> {
        self.0 .0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        batch.clear();
        Ok(())
    }
}
