//! The test suite's network simulator (tests/it/common/netsim.rs) as a standalone UDP proxy, for
//! scripts that measure over an impaired path (scripts/bench-join.sh: 40 ms of round trip).
//!
//! ```text
//! netsim TARGET RTT_MS [LOSS]   proxies 127.0.0.1:PORT -> TARGET with RTT_MS/2 of delay each
//!                               way (and LOSS, 0..1, each way); prints PORT, then runs until
//!                               killed
//! ```

#[path = "../tests/it/common/netsim.rs"]
mod netsim;

use std::time::Duration;

use netsim::{Impairment, NetSim};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(target), Some(rtt_ms)) =
        (args.first().and_then(|a| a.parse().ok()), args.get(1).and_then(|a| a.parse::<f64>().ok()))
    else {
        eprintln!("usage: netsim TARGET RTT_MS [LOSS]");
        std::process::exit(2)
    };
    let loss = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0.0);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async move {
        let way = Impairment { delay: Duration::from_secs_f64(rtt_ms / 2000.0), loss, ..Impairment::default() };
        let sim = NetSim::start(target, 1, way.clone(), way).await;
        println!("{}", sim.addr().port());
        std::future::pending::<()>().await;
    });
}
