//! The model's fan-out: one frame written to a track and read by 1, 100 and 1000 consumers, all
//! sharing one `Bytes`. Measures the producer's write plus every consumer's read of the frame.
//! Run: `cargo bench --bench fanout`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use moqt::model::{GroupConsumer, TrackEvent, TrackInfo, TrackProducer};

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_one_frame");
    let payload = Bytes::from(vec![0u8; 4096]);
    for consumers in [1usize, 100, 1000] {
        group.throughput(Throughput::Elements(consumers as u64));
        group.bench_with_input(BenchmarkId::from_parameter(consumers), &consumers, |b, &consumers| {
            let mut track = TrackProducer::new("video", TrackInfo::default()).unwrap();
            let mut readers: Vec<_> = (0..consumers).map(|_| track.consume()).collect();
            let mut groups: Vec<Option<GroupConsumer>> = (0..consumers).map(|_| None).collect();
            // One group per 1000 frames, like a long GOP, so the measure is the frame path.
            let mut writer = track.append_group().unwrap();
            let mut in_group = 0;
            b.iter(|| {
                if in_group == 1000 {
                    let next = track.append_group().unwrap();
                    std::mem::replace(&mut writer, next).finish().unwrap();
                    groups.iter_mut().for_each(|g| *g = None);
                    in_group = 0;
                }
                writer.write(in_group, payload.clone()).unwrap();
                in_group += 1;
                for (reader, group) in readers.iter_mut().zip(groups.iter_mut()) {
                    if group.is_none() {
                        while let Some(Ok(Some(TrackEvent::Group(next)))) = reader.try_next_group() {
                            *group = Some(next);
                        }
                    }
                    let frame = group.as_mut().and_then(|g| g.try_next_frame()).unwrap().unwrap().unwrap();
                    black_box(frame.payload.len());
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
