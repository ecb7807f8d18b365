package peer;

import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.serialization.SimpleStringEncoder;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.file.sink.FileSink;
import org.apache.flink.core.fs.Path;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.filesystem.rollingpolicies.OnCheckpointRollingPolicy;
import org.apache.flink.util.Collector;

/**
 * ThroughputWordCount (shared/peer/flink) with Flink's exactly-once FileSink instead of the
 * discarding sink: every (word,count) update becomes one committed line, as in Floe's
 * `floe-bench wordcount --sink file`. Part files roll at every checkpoint (Floe's FileSink
 * does too), so committed output trails the input by one checkpoint in both.
 *
 * Usage: FileSinkWordCount <N words> <checkpointDir URI> <output dir> [parallelism]
 */
public class FileSinkWordCount {
    public static void main(String[] args) throws Exception {
        long n = Long.parseLong(args[0].replace("_", ""));
        String ckptDir = args[1];
        String outDir = args[2];
        int parallelism = args.length > 3 ? Integer.parseInt(args[3]) : 2;
        long lines = (n + 9) / 10;

        Configuration conf = new Configuration();
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

        // The generator of peer.ThroughputWordCount (same package, same input).
        DataGeneratorSource<String> source = new DataGeneratorSource<>(
                new ThroughputWordCount.LineGenerator(n), lines, Types.STRING);
        FileSink<Tuple2<String, Integer>> sink = FileSink
                .forRowFormat(new Path(outDir), new SimpleStringEncoder<Tuple2<String, Integer>>())
                .withRollingPolicy(OnCheckpointRollingPolicy.build())
                .build();

        env.fromSource(source, WatermarkStrategy.noWatermarks(), "generator")
                .flatMap(new FlatMapFunction<String, String>() {
                    @Override
                    public void flatMap(String line, Collector<String> out) {
                        for (String w : line.split(" ")) {
                            if (!w.isEmpty()) out.collect(w);
                        }
                    }
                })
                .map(new MapFunction<String, String>() {
                    @Override
                    public String map(String w) {
                        if (w.equals("error")) throw new RuntimeException("poison word 'error'");
                        return w;
                    }
                })
                .map(w -> Tuple2.of(w, 1))
                .returns(Types.TUPLE(Types.STRING, Types.INT))
                .keyBy(t -> t.f0)
                .sum(1)
                .sinkTo(sink);

        long t0 = System.nanoTime();
        JobExecutionResult r = env.execute("FileSinkWordCount");
        long t1 = System.nanoTime();
        double wallS = (t1 - t0) / 1e9;
        System.out.printf("RESULT words=%d parallelism=%d elapsed_s=%.3f words_per_s=%.0f job_net_runtime_s=%.3f%n",
                n, parallelism, wallS, n / wallS, r.getNetRuntime() / 1e3);
    }
}
