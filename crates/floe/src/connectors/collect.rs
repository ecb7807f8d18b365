//! A sink that keeps every record in memory, for tests.

use super::{Sink, SinkWriter};
use crate::api::functions::TaskInfo;
use crate::sync::LockExt;
use crate::Result;
use std::sync::{Arc, Mutex};

/// Reads what a collecting sink received. Records of every attempt are kept, so after a
/// restart the records emitted since the restored checkpoint appear again (the sink is not
/// transactional, like Flink's print).
pub struct CollectHandle<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for CollectHandle<T> {
    fn clone(&self) -> Self {
        CollectHandle(Arc::clone(&self.0))
    }
}
impl<T> Default for CollectHandle<T> {
    fn default() -> Self {
        CollectHandle(Arc::new(Mutex::new(Vec::new())))
    }
}

impl<T: Clone> CollectHandle<T> {
    /// Takes the records collected so far.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.0.lock_ok())
    }
    /// A copy of the records collected so far.
    pub fn snapshot(&self) -> Vec<T> {
        self.0.lock_ok().clone()
    }
}

pub(crate) struct CollectSink<T>(pub CollectHandle<T>);

impl<T: Send + 'static> Sink<T> for CollectSink<T> {
    fn name(&self) -> String {
        "Collect".into()
    }
    fn create(&self, _info: &TaskInfo) -> Result<Box<dyn SinkWriter<T>>> {
        Ok(Box::new(CollectWriter(CollectHandle(Arc::clone(
            &self.0 .0,
        )))))
    }
}

struct CollectWriter<T>(CollectHandle<T>);

impl<T> SinkWriter<T> for CollectWriter<T> {
    fn write_batch(&mut self, batch: &mut Vec<T>) -> Result<()> {
        self.0 .0.lock_ok().append(batch);
        Ok(())
    }
}
