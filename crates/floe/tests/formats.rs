//! The file source with record formats (JSON Lines and CSV), in real jobs over real files:
//! decoded records, CSV records over several lines, and bad records failing the job with
//! the file and line — or skipped and counted with `ignore_parse_errors`.

use floe::connectors::file::TextFileSource;
use floe::connectors::format::{Csv, Json};
use floe::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Bid {
    auction: u64,
    bidder: String,
    price: u64,
}

fn bid(auction: u64, bidder: &str, price: u64) -> Bid {
    Bid {
        auction,
        bidder: bidder.into(),
        price,
    }
}

/// Runs a job that reads `source` at parallelism 2 and sums prices per auction.
fn run<S: floe::connectors::Source<Bid>>(source: S) -> floe::Result<Vec<(u64, u64)>> {
    let env = StreamEnv::new();
    env.set_parallelism(2);
    let out = env
        .add_source(source)
        .map(|b: Bid| (b.auction, b.price))
        .key_by(|t: &(u64, u64)| t.0)
        .sum(1)
        .collect();
    env.execute("formats")?;
    let mut v = out.take();
    v.sort();
    Ok(v)
}

#[test]
fn json_lines_and_csv_files_decode_into_records_across_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        "{\"auction\":1,\"bidder\":\"ann\",\"price\":10}\n{\"auction\":2,\"bidder\":\"bo\",\"price\":5}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.json"),
        "{\"auction\":1,\"bidder\":\"cy\",\"price\":7}",
    )
    .unwrap();
    let got = run(TextFileSource::new(dir.path()).with_format(Json::<Bid>::new())).unwrap();
    // Running sums per auction, every update.
    assert!(got.contains(&(1, 17)), "{got:?}");
    assert_eq!(
        got.iter().filter(|t| t.0 == 2).collect::<Vec<_>>(),
        [&(2, 5)]
    );

    let csv = tempfile::tempdir().unwrap();
    // A quoted bidder with the delimiter, a doubled quote and a line break inside.
    std::fs::write(
        csv.path().join("bids.csv"),
        "1;ann;10\r\n3;\"x;\"\"y\"\"\nz\";4\n3;bo;6\n",
    )
    .unwrap();
    let env = StreamEnv::new();
    let out = env
        .add_source(TextFileSource::new(csv.path()).with_format(Csv::<Bid>::with_delimiter(b';')))
        .collect();
    env.execute("csv").unwrap();
    let mut got = out.take();
    got.sort();
    assert_eq!(
        got,
        vec![bid(1, "ann", 10), bid(3, "bo", 6), bid(3, "x;\"y\"\nz", 4)]
    );
}

#[test]
fn a_record_that_cannot_be_decoded_fails_the_job_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bids.csv");
    std::fs::write(&file, "1,ann,10\n2,\"b\no\",5\n2,cy,notaprice\n").unwrap();
    let err = run(TextFileSource::new(&file).with_format(Csv::<Bid>::new()))
        .unwrap_err()
        .to_string();
    // The bad record is on line 4: the record before it spans lines 2 and 3.
    let want = format!(
        "cannot decode the record at {} line 4: field 3: invalid digit found in string",
        file.display()
    );
    assert!(err.contains(&want), "{err}");

    std::fs::write(&file, "1,ann,10\n\"2,bo,5\n").unwrap();
    let err = run(TextFileSource::new(&file).with_format(Csv::<Bid>::new()))
        .unwrap_err()
        .to_string();
    let want = format!(
        "input file {} ends inside the record that starts at {} line 2 (a quoted field is not closed)",
        file.display(),
        file.display()
    );
    assert!(err.contains(&want), "{err}");
}

#[test]
fn ignore_parse_errors_skips_and_counts_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bids.json"),
        "{\"auction\":1,\"bidder\":\"ann\",\"price\":10}\nnot json\n{\"auction\":1}\n{\"auction\":1,\"bidder\":\"bo\",\"price\":2}\n",
    )
    .unwrap();
    let source = TextFileSource::new(dir.path())
        .with_format(Json::<Bid>::new())
        .ignore_parse_errors();
    let skipped = source.skipped_records();
    let got = run(source).unwrap();
    assert_eq!(got, vec![(1, 10), (1, 12)]);
    assert_eq!(skipped.load(Ordering::Relaxed), 2);
}

/// The committed lines of every part file in `dir`, sorted.
fn part_lines(dir: &std::path::Path) -> Vec<String> {
    let mut lines = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("part-") {
            let text = std::fs::read_to_string(e.path()).unwrap();
            lines.extend(text.lines().map(str::to_string));
        }
    }
    lines.sort();
    lines
}

#[test]
fn the_file_sink_writes_json_lines_and_csv_that_read_back_as_the_records() {
    use floe::connectors::file_sink::{FileSink, SchemaEncoder};
    let bids: Vec<Bid> = (0..200u64)
        .map(|i| bid(i % 7, if i % 3 == 0 { "a,\"b\"" } else { "c" }, i))
        .collect();
    let ck = tempfile::tempdir().unwrap();
    let json_out = tempfile::tempdir().unwrap();
    let csv_out = tempfile::tempdir().unwrap();
    let env = StreamEnv::new();
    env.set_parallelism(2);
    env.enable_checkpointing(std::time::Duration::from_millis(20));
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    env.from_collection(bids.clone())
        .uid("bids-json")
        .sink_exactly_once(
            FileSink::for_row_format(json_out.path())
                .with_encoder(SchemaEncoder::new(Json::<Bid>::new())),
        )
        .uid("json");
    env.from_collection(bids.clone())
        .uid("bids-csv")
        .sink_exactly_once(
            FileSink::for_row_format(csv_out.path())
                .with_encoder(SchemaEncoder::new(Csv::<Bid>::new())),
        )
        .uid("csv");
    env.execute("sinks").unwrap();

    let mut want = bids.clone();
    want.sort();
    let mut from_json: Vec<Bid> = part_lines(json_out.path())
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    from_json.sort();
    assert_eq!(from_json, want);
    assert!(part_lines(json_out.path())
        .contains(&r#"{"auction":0,"bidder":"a,\"b\"","price":0}"#.to_string()));

    // Read back through the file source with the same format, as a downstream job would.
    let env = StreamEnv::new();
    let out = env
        .add_source(TextFileSource::new(csv_out.path()).with_format(Csv::<Bid>::new()))
        .collect();
    env.execute("read back").unwrap();
    let mut from_csv = out.take();
    from_csv.sort();
    assert_eq!(from_csv, want);
    assert!(part_lines(csv_out.path()).contains(&"0,\"a,\"\"b\"\"\",0".to_string()));
}
