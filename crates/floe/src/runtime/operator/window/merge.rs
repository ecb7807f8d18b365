//! The in-flight windows of one key under a merging assigner (Flink's `MergingWindowSet`).
//!
//! When session windows merge, their contents are not copied into a new window: every
//! in-flight window maps to a *state window*, the window its contents (and, for the window
//! operator, its accumulator) are stored under. A merge keeps the state window of one of
//! the merged windows for the result and merges the others' state into it, so a session
//! that grows by one element merges nothing at all.

use crate::api::window::Window;
use crate::Result;
use serde::{Deserialize, Serialize};

/// What a merge did, handed to the window operator so it can merge state and timers
/// (the arguments of Flink's `MergeFunction.merge`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Merge<'a, W> {
    /// The window the merged windows became.
    pub result: &'a W,
    /// The in-flight windows merged into `result` (not the window being added).
    pub merged: &'a [W],
    /// The state window of `result`: the state window of one of `merged`, kept.
    pub state_window: &'a W,
    /// The other merged windows' state windows: their state is to be merged into
    /// `state_window` and removed.
    pub merged_state_windows: &'a [W],
}

/// In-flight windows and their state windows, sorted by window. Stored as keyed state
/// (`_merging-windows`) of the window operator, one set per key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct MergingWindowSet<W> {
    mapping: Vec<(W, W)>,
}

impl<W> Default for MergingWindowSet<W> {
    fn default() -> Self {
        MergingWindowSet {
            mapping: Vec::new(),
        }
    }
}

impl<W: Window> MergingWindowSet<W> {
    pub(crate) fn is_empty(&self) -> bool {
        self.mapping.is_empty()
    }

    fn find(&self, window: &W) -> std::result::Result<usize, usize> {
        self.mapping.binary_search_by(|(w, _)| w.cmp(window))
    }

    fn insert(&mut self, window: W, state_window: W) {
        match self.find(&window) {
            Ok(i) => self.mapping[i].1 = state_window,
            Err(i) => self.mapping.insert(i, (window, state_window)),
        }
    }

    fn remove(&mut self, window: &W) -> Option<W> {
        self.find(window).ok().map(|i| self.mapping.remove(i).1)
    }

    /// The state window of the in-flight `window`.
    pub(crate) fn state_window(&self, window: &W) -> Option<&W> {
        self.find(window).ok().map(|i| &self.mapping[i].1)
    }

    /// The in-flight windows.
    #[cfg(test)]
    pub(crate) fn windows(&self) -> impl Iterator<Item = &W> + '_ {
        self.mapping.iter().map(|(w, _)| w)
    }

    /// Removes `window` once it is done (fired and cleaned up, or late).
    pub(crate) fn retire_window(&mut self, window: &W) -> Result<()> {
        match self.remove(window) {
            Some(_) => Ok(()),
            None => crate::bail!("Window {window} is not in in-flight window set."),
        }
    }

    /// Adds `new_window`, merging it with the in-flight windows it overlaps, and returns the
    /// window it ended up in (Flink's `addWindow`). `merge_windows` is the assigner's
    /// `merge_windows`; `on_merge` is called for every merge that changed a window, before
    /// the caller adds the element, so it can merge state and move timers.
    pub(crate) fn add_window(
        &mut self,
        new_window: W,
        merge_windows: impl FnOnce(&[W], &mut dyn FnMut(Vec<W>, W)),
        mut on_merge: impl FnMut(Merge<'_, W>) -> Result<()>,
    ) -> Result<W> {
        // A window that is already in flight gets the element as it is. (Flink would find
        // no merge, since equal windows count once, and then map the window to itself,
        // losing the state window of an earlier merge: possible with dynamic gaps.)
        if self.state_window(&new_window).is_some() {
            return Ok(new_window);
        }
        let mut windows: Vec<W> = Vec::with_capacity(self.mapping.len() + 1);
        windows.extend(self.mapping.iter().map(|(w, _)| w.clone()));
        windows.push(new_window.clone());
        let mut merges: Vec<(W, Vec<W>)> = Vec::new();
        merge_windows(&windows, &mut |group, result| merges.push((result, group)));

        let mut result_window = new_window.clone();
        let mut merged_new = false;
        for (merge_result, mut merged) in merges {
            if let Some(i) = merged.iter().position(|w| *w == new_window) {
                merged.remove(i);
                merged_new = true;
                result_window = merge_result.clone();
            }
            // Keep the state window of one of the merged windows for the result.
            let Some(state_window) = merged.first().and_then(|w| self.state_window(w)).cloned()
            else {
                crate::bail!(
                    "merging windows into {merge_result}: none of the merged windows is in flight"
                );
            };
            let mut merged_state_windows: Vec<W> =
                merged.iter().filter_map(|w| self.remove(w)).collect();
            self.insert(merge_result.clone(), state_window.clone());
            merged_state_windows.retain(|w| *w != state_window);
            // A new window inside one in-flight window changes nothing: no merge.
            if !(merged.len() == 1 && merged[0] == merge_result) {
                on_merge(Merge {
                    result: &merge_result,
                    merged: &merged,
                    state_window: &state_window,
                    merged_state_windows: &merged_state_windows,
                })?;
            }
        }
        if !merged_new {
            // A new, self-contained window.
            self.insert(result_window.clone(), result_window.clone());
        }
        Ok(result_window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::window::TimeWindow;

    fn tw(s: i64, e: i64) -> TimeWindow {
        TimeWindow::new(s, e)
    }

    /// What one `add_window` merged: (result, merged, state window, merged state windows).
    type Merged = Vec<(TimeWindow, Vec<TimeWindow>, TimeWindow, Vec<TimeWindow>)>;

    fn add(set: &mut MergingWindowSet<TimeWindow>, w: TimeWindow) -> (TimeWindow, Merged) {
        let mut merged = Vec::new();
        let r = set
            .add_window(
                w,
                |ws, cb| TimeWindow::merge_windows(ws, cb),
                |m| {
                    merged.push((
                        *m.result,
                        m.merged.to_vec(),
                        *m.state_window,
                        m.merged_state_windows.to_vec(),
                    ));
                    Ok(())
                },
            )
            .unwrap();
        (r, merged)
    }

    #[test]
    fn incremental_merging_keeps_the_first_state_window() {
        // Flink's MergingWindowSetTest#testIncrementalMerging.
        let mut s = MergingWindowSet::default();
        assert_eq!(add(&mut s, tw(0, 4)), (tw(0, 4), vec![]));
        assert_eq!(s.state_window(&tw(0, 4)), Some(&tw(0, 4)));
        assert_eq!(add(&mut s, tw(0, 4)), (tw(0, 4), vec![]));
        assert_eq!(
            add(&mut s, tw(3, 5)),
            (tw(0, 5), vec![(tw(0, 5), vec![tw(0, 4)], tw(0, 4), vec![])])
        );
        assert_eq!(
            add(&mut s, tw(4, 6)),
            (tw(0, 6), vec![(tw(0, 6), vec![tw(0, 5)], tw(0, 4), vec![])])
        );
        assert_eq!(s.state_window(&tw(0, 6)), Some(&tw(0, 4)));
        // Windows inside the merged one change nothing.
        assert_eq!(add(&mut s, tw(1, 4)), (tw(0, 6), vec![]));
        assert_eq!(add(&mut s, tw(0, 6)), (tw(0, 6), vec![]));
        // A separate session.
        assert_eq!(add(&mut s, tw(11, 14)), (tw(11, 14), vec![]));
        assert_eq!(
            add(&mut s, tw(10, 13)),
            (
                tw(10, 14),
                vec![(tw(10, 14), vec![tw(11, 14)], tw(11, 14), vec![])]
            )
        );
        assert_eq!(
            s.windows().copied().collect::<Vec<_>>(),
            vec![tw(0, 6), tw(10, 14)]
        );
        // A window bridging both sessions merges their state into one state window.
        assert_eq!(
            add(&mut s, tw(5, 11)),
            (
                tw(0, 14),
                vec![(
                    tw(0, 14),
                    vec![tw(0, 6), tw(10, 14)],
                    tw(0, 4),
                    vec![tw(11, 14)]
                )]
            )
        );
        assert_eq!(s.windows().copied().collect::<Vec<_>>(), vec![tw(0, 14)]);
        assert_eq!(s.state_window(&tw(0, 14)), Some(&tw(0, 4)));
    }

    #[test]
    fn a_large_window_covering_several_merges_them_all() {
        // Flink's testMergeLargeWindowCoveringMultipleWindows.
        let mut s = MergingWindowSet::default();
        add(&mut s, tw(1, 3));
        add(&mut s, tw(5, 7));
        add(&mut s, tw(11, 13));
        assert_eq!(
            add(&mut s, tw(0, 20)),
            (
                tw(0, 20),
                vec![(
                    tw(0, 20),
                    vec![tw(1, 3), tw(5, 7), tw(11, 13)],
                    tw(1, 3),
                    vec![tw(5, 7), tw(11, 13)]
                )]
            )
        );
        assert_eq!(s.state_window(&tw(0, 20)), Some(&tw(1, 3)));
    }

    #[test]
    fn a_large_window_covering_one_takes_its_state_window() {
        // Flink's testMergeLargeWindowCoveringSingleWindow.
        let mut s = MergingWindowSet::default();
        add(&mut s, tw(1, 2));
        assert_eq!(
            add(&mut s, tw(0, 3)),
            (tw(0, 3), vec![(tw(0, 3), vec![tw(1, 2)], tw(1, 2), vec![])])
        );
        assert_eq!(s.state_window(&tw(0, 3)), Some(&tw(1, 2)));
    }

    #[test]
    fn an_in_flight_window_added_again_keeps_its_state_window() {
        // A dynamic gap can produce a window equal to an earlier merge result.
        let mut s = MergingWindowSet::default();
        add(&mut s, tw(0, 5));
        add(&mut s, tw(5, 10));
        assert_eq!(s.state_window(&tw(0, 10)), Some(&tw(0, 5)));
        assert_eq!(add(&mut s, tw(0, 10)), (tw(0, 10), vec![]));
        assert_eq!(s.state_window(&tw(0, 10)), Some(&tw(0, 5)));
    }

    #[test]
    fn retiring_removes_the_window_and_refuses_unknown_ones() {
        let mut s = MergingWindowSet::default();
        add(&mut s, tw(0, 4));
        s.retire_window(&tw(0, 4)).unwrap();
        assert!(s.is_empty());
        let e = s.retire_window(&tw(0, 4)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Window TimeWindow{start=0, end=4} is not in in-flight window set."
        );
    }

    #[test]
    fn the_set_round_trips_through_state_encoding() {
        let mut s = MergingWindowSet::default();
        add(&mut s, tw(0, 4));
        add(&mut s, tw(3, 8));
        add(&mut s, tw(20, 24));
        let mut bytes = Vec::new();
        crate::state::encode_value(&s, &mut bytes).unwrap();
        let back: MergingWindowSet<TimeWindow> = crate::state::decode_value(&bytes).unwrap();
        assert_eq!(back, s);
    }
}
