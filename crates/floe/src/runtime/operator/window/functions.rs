//! The internal window functions: what a firing does with a window's accumulator. Each
//! public combination (`reduce`, `aggregate`, `process`, `reduce_with`, `aggregate_with`,
//! with or without an evictor) is one nesting of these, monomorphised, so a firing calls
//! the user's functions directly (Flink's `InternalWindowFunction` wrappers).

use crate::api::data::{Data, Key};
use crate::api::functions::{Collector, RuntimeContext};
use crate::api::window::{
    AggregateFunction, Evictor, EvictorContext, ProcessWindowContext, ProcessWindowFunction,
    TimestampedValues, Window,
};
use crate::Result;
use std::marker::PhantomData;

/// Evaluates a fired window's accumulator `Acc` (a reduced value, an aggregate's
/// accumulator, the list of elements, or a slice of elements for the nested functions).
pub(crate) trait WindowFn<K, W, Acc: ?Sized, R>: Clone + Send + Sync + 'static {
    fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
        Ok(())
    }
    fn process(
        &mut self,
        key: &K,
        acc: &mut Acc,
        ctx: &mut ProcessWindowContext<'_, '_, K, W, R>,
        out: &mut Collector<R>,
    ) -> Result<()>;
    fn clear(&mut self, _ctx: &mut ProcessWindowContext<'_, '_, K, W, R>) -> Result<()> {
        Ok(())
    }
}

/// Emits the elements it is given (the result of a plain `reduce` or `aggregate`).
#[derive(Clone, Copy, Default)]
pub(crate) struct Emit;

impl<K, W, V: Data> WindowFn<K, W, [V], V> for Emit {
    #[inline]
    fn process(
        &mut self,
        _key: &K,
        acc: &mut [V],
        _ctx: &mut ProcessWindowContext<'_, '_, K, W, V>,
        out: &mut Collector<V>,
    ) -> Result<()> {
        out.buf.extend(acc.iter().cloned());
        Ok(())
    }
}

/// A user's [`ProcessWindowFunction`] over the elements it is given.
#[derive(Clone)]
pub(crate) struct Process<P>(pub P);

impl<K: Key, W: Window, T, R, P: ProcessWindowFunction<T, R, K, W>> WindowFn<K, W, [T], R>
    for Process<P>
{
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.0.open(ctx)
    }
    fn process(
        &mut self,
        key: &K,
        acc: &mut [T],
        ctx: &mut ProcessWindowContext<'_, '_, K, W, R>,
        out: &mut Collector<R>,
    ) -> Result<()> {
        self.0.process(key, ctx, acc, out)
    }
    fn clear(&mut self, ctx: &mut ProcessWindowContext<'_, '_, K, W, R>) -> Result<()> {
        self.0.clear(ctx)
    }
}

/// An incrementally reduced window: its one value, handed on as a one-element slice.
#[derive(Clone)]
pub(crate) struct Reduced<Th>(pub Th);

impl<K, W, T, R, Th: WindowFn<K, W, [T], R>> WindowFn<K, W, T, R> for Reduced<Th> {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.0.open(ctx)
    }
    #[inline]
    fn process(
        &mut self,
        key: &K,
        acc: &mut T,
        ctx: &mut ProcessWindowContext<'_, '_, K, W, R>,
        out: &mut Collector<R>,
    ) -> Result<()> {
        self.0.process(key, std::slice::from_mut(acc), ctx, out)
    }
    fn clear(&mut self, ctx: &mut ProcessWindowContext<'_, '_, K, W, R>) -> Result<()> {
        self.0.clear(ctx)
    }
}

/// An incrementally aggregated window: `get_result` of its accumulator, handed on.
pub(crate) struct Aggregated<A, Th, T, R0> {
    pub agg: A,
    pub then: Th,
    pub _p: PhantomData<fn(T) -> R0>,
}

impl<A: Clone, Th: Clone, T, R0> Clone for Aggregated<A, Th, T, R0> {
    fn clone(&self) -> Self {
        Aggregated {
            agg: self.agg.clone(),
            then: self.then.clone(),
            _p: PhantomData,
        }
    }
}

impl<K, W, T, ACC, R0, R, A, Th> WindowFn<K, W, ACC, R> for Aggregated<A, Th, T, R0>
where
    A: AggregateFunction<T, ACC, R0>,
    Th: WindowFn<K, W, [R0], R>,
    T: 'static,
    R0: 'static,
{
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.then.open(ctx)
    }
    #[inline]
    fn process(
        &mut self,
        key: &K,
        acc: &mut ACC,
        ctx: &mut ProcessWindowContext<'_, '_, K, W, R>,
        out: &mut Collector<R>,
    ) -> Result<()> {
        let mut r = [self.agg.get_result(acc)];
        self.then.process(key, &mut r, ctx, out)
    }
    fn clear(&mut self, ctx: &mut ProcessWindowContext<'_, '_, K, W, R>) -> Result<()> {
        self.then.clear(ctx)
    }
}

/// A window that lists its elements (`process`).
#[derive(Clone)]
pub(crate) struct Listed<Th>(pub Th);

impl<K, W, T, R, Th: WindowFn<K, W, [T], R>> WindowFn<K, W, Vec<T>, R> for Listed<Th> {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.0.open(ctx)
    }
    #[inline]
    fn process(
        &mut self,
        key: &K,
        acc: &mut Vec<T>,
        ctx: &mut ProcessWindowContext<'_, '_, K, W, R>,
        out: &mut Collector<R>,
    ) -> Result<()> {
        self.0.process(key, acc.as_mut_slice(), ctx, out)
    }
    fn clear(&mut self, ctx: &mut ProcessWindowContext<'_, '_, K, W, R>) -> Result<()> {
        self.0.clear(ctx)
    }
}

/// Reduces the elements of an evicting window at firing time.
#[derive(Clone)]
pub(crate) struct FoldReduce<F, Th> {
    pub f: F,
    pub then: Th,
}

impl<K, W, T: Data, R, F, Th> WindowFn<K, W, [T], R> for FoldReduce<F, Th>
where
    F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
    Th: WindowFn<K, W, [T], R>,
{
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.then.open(ctx)
    }
    fn process(
        &mut self,
        key: &K,
        acc: &mut [T],
        ctx: &mut ProcessWindowContext<'_, '_, K, W, R>,
        out: &mut Collector<R>,
    ) -> Result<()> {
        let mut it = acc.iter().cloned();
        let Some(first) = it.next() else {
            return Ok(());
        };
        let mut r = [it.fold(first, &mut self.f)];
        self.then.process(key, &mut r, ctx, out)
    }
    fn clear(&mut self, ctx: &mut ProcessWindowContext<'_, '_, K, W, R>) -> Result<()> {
        self.then.clear(ctx)
    }
}

/// Aggregates the elements of an evicting window at firing time.
pub(crate) struct FoldAggregate<A, Th, ACC, R0> {
    pub agg: A,
    pub then: Th,
    pub _p: PhantomData<fn() -> (ACC, R0)>,
}

impl<A: Clone, Th: Clone, ACC, R0> Clone for FoldAggregate<A, Th, ACC, R0> {
    fn clone(&self) -> Self {
        FoldAggregate {
            agg: self.agg.clone(),
            then: self.then.clone(),
            _p: PhantomData,
        }
    }
}

impl<K, W, T: Data, ACC: 'static, R0: 'static, R, A, Th> WindowFn<K, W, [T], R>
    for FoldAggregate<A, Th, ACC, R0>
where
    A: AggregateFunction<T, ACC, R0>,
    Th: WindowFn<K, W, [R0], R>,
{
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.then.open(ctx)
    }
    fn process(
        &mut self,
        key: &K,
        acc: &mut [T],
        ctx: &mut ProcessWindowContext<'_, '_, K, W, R>,
        out: &mut Collector<R>,
    ) -> Result<()> {
        if acc.is_empty() {
            return Ok(());
        }
        let mut a = self.agg.create_accumulator();
        for v in acc.iter() {
            self.agg.add(v.clone(), &mut a);
        }
        let mut r = [self.agg.get_result(&a)];
        self.then.process(key, &mut r, ctx, out)
    }
    fn clear(&mut self, ctx: &mut ProcessWindowContext<'_, '_, K, W, R>) -> Result<()> {
        self.then.clear(ctx)
    }
}

/// A window with an evictor (Flink's `EvictingWindowOperator`): evicts before, evaluates
/// the remaining elements, evicts after; what remains stays for the next firing.
#[derive(Clone)]
pub(crate) struct Evicting<E, Th> {
    pub evictor: E,
    pub then: Th,
}

impl<K, W: Window, T, R: Data, E, Th> WindowFn<K, W, TimestampedValues<T>, R> for Evicting<E, Th>
where
    K: Key,
    E: Evictor<T, W>,
    Th: WindowFn<K, W, [T], R>,
{
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.then.open(ctx)
    }
    fn process(
        &mut self,
        key: &K,
        acc: &mut TimestampedValues<T>,
        ctx: &mut ProcessWindowContext<'_, '_, K, W, R>,
        out: &mut Collector<R>,
    ) -> Result<()> {
        let ecx = EvictorContext::new(ctx.current_processing_time(), ctx.current_watermark());
        let window = ctx.window().clone();
        self.evictor.evict_before(acc, &window, &ecx);
        self.then.process(key, acc.values_mut(), ctx, out)?;
        self.evictor.evict_after(acc, &window, &ecx);
        Ok(())
    }
    fn clear(&mut self, ctx: &mut ProcessWindowContext<'_, '_, K, W, R>) -> Result<()> {
        self.then.clear(ctx)
    }
}
