//! Event time end to end: timestamps and watermarks through an exchange, timers of a keyed
//! process function and side outputs, at parallelism 2.

use floe::prelude::*;
use std::time::Duration;

/// Registers an event-time timer 5 ms after every record; on the timer emits
/// `(key, timer timestamp, watermark at firing)`. Records whose timestamp is a multiple of
/// 100 also go to the side output.
#[derive(Clone)]
struct Echo {
    side: OutputTag<(String, i64)>,
}

impl KeyedProcessFunction<String, (i64, String), (String, i64, i64)> for Echo {
    fn process_element(
        &mut self,
        v: (i64, String),
        ctx: &mut Context<'_, '_, String, (String, i64, i64)>,
        _out: &mut Collector<(String, i64, i64)>,
    ) -> Result<()> {
        assert_eq!(ctx.timestamp(), Some(v.0));
        if v.0 % 100 == 0 {
            ctx.output(&self.side, (v.1.clone(), v.0))?;
        }
        ctx.timer_service().register_event_time_timer(v.0 + 5)?;
        // Registered twice: still fires once.
        ctx.timer_service().register_event_time_timer(v.0 + 5)
    }
    fn on_timer(
        &mut self,
        ts: i64,
        ctx: &mut Context<'_, '_, String, (String, i64, i64)>,
        out: &mut Collector<(String, i64, i64)>,
    ) -> Result<()> {
        assert_eq!(ctx.time_domain(), Some(TimeDomain::EventTime));
        let wm = ctx.timer_service().current_watermark();
        out.collect((ctx.current_key().clone(), ts, wm));
        Ok(())
    }
}

#[test]
fn timers_fire_once_per_key_and_timestamp_when_the_watermark_passes_them() {
    let env = StreamEnv::new();
    env.set_parallelism(2);
    let input: Vec<(i64, String)> = (0..1000i64)
        .map(|i| (i * 10, format!("k{}", i % 7)))
        .collect();
    let side = OutputTag::<(String, i64)>::new("hundreds");
    let fired = env
        .from_collection(input)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(20))
                .with_timestamp_assigner(|e: &(i64, String), _| e.0),
        )
        .key_by(|e| e.1.clone())
        .process(Echo { side: side.clone() });
    let hundreds = fired.get_side_output(&side).collect();
    let fired = fired.collect();
    env.execute("timers").unwrap();
    let mut got = fired.take();
    got.sort_by_key(|e| e.1);
    assert_eq!(got.len(), 1000, "one firing per key and timestamp");
    for (i, (key, ts, wm)) in got.iter().enumerate() {
        let i = i as i64;
        assert_eq!(
            (key.as_str(), *ts),
            (format!("k{}", i % 7).as_str(), i * 10 + 5)
        );
        assert!(
            *wm >= *ts,
            "a timer fires only once the watermark reached it"
        );
    }
    let mut h = hundreds.take();
    h.sort_by_key(|e| e.1);
    assert_eq!(h.len(), 100);
    assert_eq!(h[3], (format!("k{}", 30 % 7), 300));
}
