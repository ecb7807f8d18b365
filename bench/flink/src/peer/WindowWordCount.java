package peer;

import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.util.Collector;
import org.apache.flink.util.NumberSequenceIterator;

import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The windowed word count benchmark: peer.ThroughputWordCount's generated words, each with a
 * synthetic event timestamp, counted per word in 1 s tumbling event-time windows.
 *
 * Usage: WindowWordCount <N words> <checkpointDir URI> [parallelism]
 *
 * Input: the N words of ThroughputWordCount (line i, word k = VOCAB[splitmix64(42 + 10 i + k)
 * mod 10000]). Word number seq = 10 i + k (0-based, over the whole input) gets the event time,
 * in epoch milliseconds,
 *
 *     ts(seq) = BASE_MS + floor(seq / WORDS_PER_MS) - (splitmix64(~seq) mod DISORDER_MS)
 *
 * with BASE_MS = 1_700_000_000_000, WORDS_PER_MS = 1000 (so a 1 s window holds about 1M words,
 * about 10k distinct ones), DISORDER_MS = 200, ~seq the bitwise complement (-1 - seq) and the
 * modulo unsigned. Within any reader that reads the words in increasing seq, a word is at most
 * 199 ms older than the newest one before it, so with forBoundedOutOfOrderness(200 ms) no word
 * is ever late and every engine puts every word into the same window: the results depend on
 * the input only, not on the parallelism or on how the readers split it.
 *
 * The source reads the lines interleaved: reader k of P reads lines k, k + P, k + 2P, ... (its
 * split's t-th index is line t * P + k), so all readers advance through event time together,
 * as the partitions of a real stream do. (Flink's DataGeneratorSource splits its index range
 * into P contiguous ranges; read as-is, the second reader would start N/2 words later in event
 * time, and since the watermark is the minimum over the readers every window of the second
 * half would stay open until the first half ends.)
 *
 * Pipeline: generator (line index, line) -> flatMap(split " ", (word, ts)) -> map(throw on
 * "error") -> assignTimestampsAndWatermarks(forBoundedOutOfOrderness(200 ms), ts)
 * -> map((word, 1)) -> keyBy(word) -> window(TumblingEventTimeWindows.of(1 s))
 * -> reduce(sum) -> counting discard sink. Exactly-once checkpoints every 1 s, parallelism 2
 * (default), STREAMING mode, default object reuse (off), as ThroughputWordCount.
 *
 * The sink counts the window results, the distinct windows that fired, the sum of the counts
 * (must be N: the program exits with 2 otherwise) and an order-independent digest of the
 * results, sum over results of splitmix64(splitmix64(fnv1a64(word) ^ windowEnd) ^ count)
 * (wrapping, windowEnd = the result's timestamp + 1 = the window's exclusive end), so two
 * engines' outputs can be compared exactly; bench/window_reference.py computes the expected
 * figures without any engine.
 */
public class WindowWordCount {
    static final long BASE_MS = 1_700_000_000_000L;
    static final long WORDS_PER_MS = 1000;
    static final long DISORDER_MS = 200;
    static final Duration OUT_OF_ORDERNESS = Duration.ofMillis(DISORDER_MS);
    static final Duration WINDOW = Duration.ofSeconds(1);

    /** Sink totals; valid because the mini-cluster runs in this JVM. */
    static final AtomicLong RESULTS = new AtomicLong();
    static final AtomicLong COUNT_SUM = new AtomicLong();
    static final AtomicLong DIGEST = new AtomicLong();
    static final Set<Long> WINDOWS = ConcurrentHashMap.newKeySet();

    /** The event time of word number seq (see the class comment). */
    static long eventTime(long seq) {
        return BASE_MS + seq / WORDS_PER_MS
                - Long.remainderUnsigned(ThroughputWordCount.splitmix64(~seq), DISORDER_MS);
    }

    static long fnv1a64(String s) {
        long h = 0xcbf29ce484222325L;
        for (int i = 0; i < s.length(); i++) {
            h ^= s.charAt(i); // the words are ASCII: one char is one byte
            h *= 0x100000001b3L;
        }
        return h;
    }

    static long resultDigest(String word, long windowEnd, long count) {
        return ThroughputWordCount.splitmix64(
                ThroughputWordCount.splitmix64(fnv1a64(word) ^ windowEnd) ^ count);
    }

    /**
     * Line number of the index'th element of the generator, so that reader k reads lines
     * k, k + P, ... Relies on NumberSequenceIterator.split giving the first (L mod P) splits
     * one element more than the others, which main() checks.
     */
    static final class InterleavedLines implements GeneratorFunction<Long, Tuple2<Long, String>> {
        private final long[] splitStarts;
        private final ThroughputWordCount.LineGenerator lines;

        InterleavedLines(long totalWords, long[] splitStarts) {
            this.splitStarts = splitStarts;
            this.lines = new ThroughputWordCount.LineGenerator(totalWords);
        }

        @Override
        public void open(SourceReaderContext readerContext) throws Exception {
            lines.open(readerContext);
        }

        @Override
        public Tuple2<Long, String> map(Long index) {
            int k = splitStarts.length - 1;
            while (splitStarts[k] > index) k--;
            long line = (index - splitStarts[k]) * splitStarts.length + k;
            return Tuple2.of(line, lines.map(line));
        }
    }

    /** Sink v2 that discards the window results and adds them up. */
    static final class CountingDiscardSink implements Sink<Tuple2<String, Long>> {
        @Override
        public SinkWriter<Tuple2<String, Long>> createWriter(WriterInitContext ctx) {
            return new SinkWriter<Tuple2<String, Long>>() {
                long results, sum, digest;
                long lastWindowEnd = Long.MIN_VALUE;

                @Override
                public void write(Tuple2<String, Long> e, Context c) {
                    // a window result's timestamp is its window's maxTimestamp() = end - 1
                    long windowEnd = c.timestamp() + 1;
                    results++;
                    sum += e.f1;
                    digest += resultDigest(e.f0, windowEnd, e.f1);
                    if (windowEnd != lastWindowEnd) {
                        WINDOWS.add(windowEnd);
                        lastWindowEnd = windowEnd;
                    }
                }

                @Override public void flush(boolean endOfInput) { }

                @Override
                public void close() {
                    RESULTS.addAndGet(results);
                    COUNT_SUM.addAndGet(sum);
                    DIGEST.addAndGet(digest);
                    results = sum = digest = 0;
                }
            };
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: WindowWordCount <N words> <checkpointDir URI> [parallelism]");
            System.exit(1);
        }
        long n = Long.parseLong(args[0].replace("_", ""));
        String ckptDir = args[1];
        int parallelism = args.length > 2 ? Integer.parseInt(args[2]) : 2;
        long lines = (n + ThroughputWordCount.WORDS_PER_LINE - 1) / ThroughputWordCount.WORDS_PER_LINE;

        // The splits DataGeneratorSource will make (it calls the same split with the source's
        // parallelism); the interleaving needs split k to hold ceil or floor of L/P elements.
        NumberSequenceIterator[] splits = new NumberSequenceIterator(0, lines - 1).split(parallelism);
        long[] starts = new long[splits.length];
        for (int k = 0; k < splits.length; k++) {
            starts[k] = splits[k].getCurrent();
            long size = splits[k].getTo() - splits[k].getCurrent() + 1;
            long expected = lines / parallelism + (k < lines % parallelism ? 1 : 0);
            if (splits.length != parallelism || size != expected) {
                System.err.println("unexpected generator split " + k + " of " + lines + " lines: "
                        + size + " lines, expected " + expected);
                System.exit(1);
            }
        }

        Configuration conf = new Configuration();
        // keep every listening socket of the local mini-cluster on the loopback interface
        conf.setString("jobmanager.bind-host", "127.0.0.1");
        conf.setString("taskmanager.bind-host", "127.0.0.1");
        conf.setString("taskmanager.host", "127.0.0.1");
        conf.setString("rest.bind-address", "127.0.0.1");
        conf.setString("rest.address", "127.0.0.1");
        conf.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
        conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, ckptDir);

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(parallelism);
        env.enableCheckpointing(1000);

        DataGeneratorSource<Tuple2<Long, String>> source = new DataGeneratorSource<>(
                new InterleavedLines(n, starts), lines, Types.TUPLE(Types.LONG, Types.STRING));

        env.fromSource(source, WatermarkStrategy.noWatermarks(), "generator")
                .flatMap(new FlatMapFunction<Tuple2<Long, String>, Tuple2<String, Long>>() {
                    @Override
                    public void flatMap(Tuple2<Long, String> line, Collector<Tuple2<String, Long>> out) {
                        long seq = line.f0 * ThroughputWordCount.WORDS_PER_LINE;
                        for (String w : line.f1.split(" ")) {
                            if (!w.isEmpty()) out.collect(Tuple2.of(w, eventTime(seq)));
                            seq++;
                        }
                    }
                })
                .map(new MapFunction<Tuple2<String, Long>, Tuple2<String, Long>>() {
                    @Override
                    public Tuple2<String, Long> map(Tuple2<String, Long> e) {
                        if (e.f0.equals("error")) throw new RuntimeException("poison word 'error'");
                        return e;
                    }
                })
                .assignTimestampsAndWatermarks(
                        WatermarkStrategy.<Tuple2<String, Long>>forBoundedOutOfOrderness(OUT_OF_ORDERNESS)
                                .withTimestampAssigner((e, previous) -> e.f1))
                .map(e -> Tuple2.of(e.f0, 1L))
                .returns(Types.TUPLE(Types.STRING, Types.LONG))
                .keyBy(t -> t.f0)
                .window(TumblingEventTimeWindows.of(WINDOW))
                .reduce((a, b) -> Tuple2.of(a.f0, a.f1 + b.f1))
                .sinkTo(new CountingDiscardSink());

        long t0 = System.nanoTime();
        JobExecutionResult r = env.execute("WindowWordCount");
        long t1 = System.nanoTime();

        double wallS = (t1 - t0) / 1e9;
        double netS = r.getNetRuntime() / 1e3;
        long sum = COUNT_SUM.get();
        System.out.printf("RESULT words=%d lines=%d parallelism=%d elapsed_s=%.3f words_per_s=%.0f "
                        + "job_net_runtime_s=%.3f net_words_per_s=%.0f window_results=%d windows=%d "
                        + "count_sum=%d digest=%016x%n",
                n, lines, parallelism, wallS, n / wallS, netS, n / netS, RESULTS.get(),
                WINDOWS.size(), sum, DIGEST.get());
        if (sum != n) {
            System.out.println("WARNING: sum of window counts " + sum + " != input words " + n);
            System.exit(2);
        }
    }
}
