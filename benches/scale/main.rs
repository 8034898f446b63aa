//! Speed at scale (not a test): the release binary on its embedded devchain, measured with wrk
//! against an axum hello-world answering a body of get_info's size in the same run, on an
//! empty book and again once the book holds a million orders.
//!
//! Run it with `scripts/bench` (which builds the release binary and installs wrk); options:
//! `--book N` (stored orders of the second pass, default 1,000,000), `--live N` (of which
//! unpaid and live, default 100,000), `--secs N` (each load, default 15), `--connections N`
//! (default 100).
//!
//! Each pass: get_info and the hello-world; what one order costs the node (CPU time and bytes
//! written to storage, over 3 s of create_order alone); then create_order (Olympus dialect,
//! each request its own client key) with get_order of one id measured beside it. The first pass also
//! measures create_order over one Lightning connection ([`p2p`]) with another peer's get_info
//! timed beside it; the second start-up (spawn to the public API answering), idle CPU over
//! 20 s, and RSS.
//! Every figure is printed with its target and, for HTTP, its ratio to the baseline.

mod load;
mod node;
mod p2p;
mod seed;
// The tests' bare Lightning peer, shared rather than copied (the bench uses part of it).
#[allow(dead_code)]
#[path = "../../tests/common/lsps0_peer.rs"]
mod lsps0_peer;
#[allow(dead_code)]
#[path = "../../tests/common/quiet_channels.rs"]
mod quiet_channels;

use std::path::PathBuf;
use std::time::Duration;

use lsp_node::lsps1::clock::SystemClock;
use lsp_node::lsps1::order::OrderId;
use lsp_node::lsps1::store::OrderBook;

use load::{start_wrk, wrk, Measured, OrderLoad};
use node::{BenchNode, Ports};

struct Options {
    book: u64,
    live: u64,
    secs: u32,
    connections: u32,
}

impl Options {
    fn parse() -> Options {
        let mut options = Options {
            book: 1_000_000,
            live: 100_000,
            secs: 15,
            connections: 100,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || -> u64 {
                args.next()
                    .and_then(|v| v.replace('_', "").parse().ok())
                    .unwrap_or_else(|| panic!("{arg} needs a number"))
            };
            match arg.as_str() {
                "--book" => options.book = value(),
                "--live" => options.live = value(),
                "--secs" => options.secs = value() as u32,
                "--connections" => options.connections = value() as u32,
                // cargo bench passes --bench to harness-less targets.
                "--bench" => {}
                other => panic!("unknown option {other}"),
            }
        }
        options
    }
}

/// One printed line: what, the figure, the target, whether it is met.
struct Figure {
    name: String,
    value: String,
    target: String,
    met: Option<bool>,
}

#[derive(Default)]
struct Report {
    figures: Vec<Figure>,
}

impl Report {
    fn add(&mut self, name: &str, value: String, target: &str, met: Option<bool>) {
        let figure = Figure {
            name: name.to_string(),
            value,
            target: target.to_string(),
            met,
        };
        println!("{}", line(&figure));
        self.figures.push(figure);
    }

    fn print(&self) {
        println!("\n| figure | measured | target | met |\n|---|---|---|---|");
        for figure in &self.figures {
            println!("{}", line(figure));
        }
    }
}

fn line(figure: &Figure) -> String {
    let met = match figure.met {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "-",
    };
    format!(
        "| {} | {} | {} | {met} |",
        figure.name, figure.value, figure.target
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// The HTTP figures of one pass over a node whose book holds `stored` orders.
struct Pass {
    hello: Measured,
    get_info: Measured,
    create_alone: CreateCost,
    create: Measured,
    get_order: Measured,
}

/// What one created order costs the node, from a create_order load with nothing beside it.
struct CreateCost {
    orders: u64,
    cpu: Duration,
    written: u64,
}

impl CreateCost {
    fn measure(node: &BenchNode, url: &str, orders: &OrderLoad, o: &Options) -> CreateCost {
        let args = orders.args();
        let (cpu, written) = (node.cpu_time(), node.storage_written());
        let load = wrk(url, o.connections, 3, Some((&orders.script, &args)));
        CreateCost {
            orders: load.requests,
            cpu: node.cpu_time() - cpu,
            written: node.storage_written() - written,
        }
    }

    fn cpu_per_order(&self) -> Duration {
        self.cpu / self.orders.max(1) as u32
    }

    fn kib_per_order(&self) -> f64 {
        self.written as f64 / 1024.0 / self.orders.max(1) as f64
    }
}

fn measure_pass(
    node: &BenchNode,
    hello_url: &str,
    orders: &OrderLoad,
    order_id: &str,
    o: &Options,
) -> Pass {
    let secs = o.secs;
    let hello = wrk(hello_url, o.connections, secs, None);
    let get_info = wrk(
        &format!("{}/api/v1/get_info", node.public_url),
        o.connections,
        secs,
        None,
    );
    let create_url = format!("{}/api/v1/create_order", node.public_url);
    let create_alone = CreateCost::measure(node, &create_url, orders, o);
    let args = orders.args();
    let create = start_wrk(
        &create_url,
        o.connections,
        secs,
        Some((&orders.script, &args)),
    );
    // get_order is measured while the create_order load runs, over a few connections of its
    // own (a wallet polling its order).
    let get_order = start_wrk(
        &format!("{}/api/v1/get_order?order_id={order_id}", node.public_url),
        4,
        secs.saturating_sub(2).max(1),
        None,
    );
    let get_order = get_order.finish();
    let create = create.finish();
    Pass {
        hello,
        get_info,
        create_alone,
        create,
        get_order,
    }
}

fn report_pass(report: &mut Report, label: &str, pass: &Pass, small: Option<&Pass>) {
    let ratio = |m: &Measured| m.per_sec / pass.hello.per_sec;
    report.add(
        &format!("hello-world baseline ({label})"),
        format!(
            "{:.0} req/s, p99 {}",
            pass.hello.per_sec,
            ms(pass.hello.p99)
        ),
        "baseline",
        None,
    );
    report.add(
        &format!("get_info ({label})"),
        format!(
            "{:.0} req/s, {:.2}x hello-world, p99 {}",
            pass.get_info.per_sec,
            ratio(&pass.get_info),
            ms(pass.get_info.p99)
        ),
        ">= 0.9x hello-world",
        Some(ratio(&pass.get_info) >= 0.9 && pass.get_info.failures == 0),
    );
    let create = &pass.create;
    let mut create_met = create.per_sec >= 2_000.0 && create.p99 < Duration::from_millis(50);
    let mut target = ">= 2000/s, p99 < 50 ms".to_string();
    if let Some(small) = small {
        create_met &= create.per_sec >= small.create.per_sec * 0.8;
        target.push_str(&format!(
            ", >= 0.8x the empty book ({:.2}x)",
            create.per_sec / small.create.per_sec
        ));
    }
    report.add(
        &format!("create_order ({label})"),
        format!(
            "{:.0} orders/s ({:.3}x hello-world), p50 {}, p99 {}, {} failed",
            create.per_sec,
            ratio(create),
            ms(create.p50),
            ms(create.p99),
            create.failures
        ),
        &target,
        Some(create_met && create.failures == 0),
    );
    let cost = &pass.create_alone;
    report.add(
        &format!("what one order costs the node, create_order alone ({label})"),
        format!(
            "{:.2} ms CPU, {:.1} KiB written to storage ({} orders in 3 s)",
            cost.cpu_per_order().as_secs_f64() * 1e3,
            cost.kib_per_order(),
            cost.orders
        ),
        "-",
        None,
    );
    report.add(
        &format!("get_order under create_order load ({label})"),
        format!(
            "p50 {}, p99 {}, {:.0} req/s, {} failed",
            ms(pass.get_order.p50),
            ms(pass.get_order.p99),
            pass.get_order.per_sec,
            pass.get_order.failures
        ),
        "p99 < 5 ms",
        Some(pass.get_order.p99 < Duration::from_millis(5) && pass.get_order.failures == 0),
    );
}

fn report_p2p(report: &mut Report, p2p: &p2p::P2pFigures) {
    let failed = match &p2p.failure {
        Some(answer) => format!(", {} failed (first: {answer})", p2p.failures),
        None => String::new(),
    };
    report.add(
        "p2p create_order over one connection",
        format!(
            "{:.0} orders/s ({} orders){failed}",
            p2p.orders_per_sec, p2p.orders
        ),
        ">= 500/s",
        Some(p2p.orders_per_sec >= 500.0 && p2p.failures == 0),
    );
    report.add(
        "another peer's get_info meanwhile",
        format!(
            "p50 {}, p99 {}, {} answers",
            ms(p2p.other_peer_p50),
            ms(p2p.other_peer_p99),
            p2p.other_peer_answers
        ),
        "keeps flowing: p99 < 100 ms",
        Some(p2p.other_peer_p99 < Duration::from_millis(100)),
    );
}

fn stored_orders(dir: &std::path::Path) -> u64 {
    let conn = rusqlite::Connection::open(node::database(dir)).expect("open the database");
    conn.query_row("SELECT COUNT(*) FROM lsps1_orders", [], |row| row.get(0))
        .expect("count orders")
}

fn main() {
    let options = Options::parse();
    let binary = std::env::var_os("LSP_NODE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/lsp-node"));
    assert!(
        binary.exists(),
        "{} is missing: run scripts/bench, which builds it",
        binary.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let work = tempfile::tempdir().expect("a scratch directory");
    let dir = work.path().join("node");
    let ports = Ports::free();
    let orders = OrderLoad::write(work.path(), 400_000);
    let mut report = Report::default();

    println!(
        "# lsp-node scale bench: book {} orders ({} live), {} s per load, {} connections",
        options.book, options.live, options.secs, options.connections
    );

    // Pass 1: an empty book.
    let (node, _) = runtime.block_on(BenchNode::start(&binary, &dir, ports));
    let info_body = runtime.block_on(async {
        let url = format!("{}/api/v1/get_info", node.public_url);
        reqwest::get(&url).await.unwrap().text().await.unwrap()
    });
    let hello = load::start_hello_world(info_body);
    let hello_url = format!("http://{hello}/");
    runtime.block_on(async {
        node.mine_for_faucet().await;
        // The live orders of both passes each reserve about 21,000 sat.
        let reserve = (options.live + 400_000) * 21_000;
        node.fund(40, reserve / 40 + 1).await;
        node.wait_taking_orders(&orders.sample).await;
    });
    let order_id = runtime.block_on(node.create_order(&orders.sample));
    let small = measure_pass(&node, &hello_url, &orders, &order_id, &options);
    let p2p = runtime.block_on(async {
        let node_id = node.node_id().await;
        p2p::measure(node_id, node.p2p_addr, options.secs).await
    });
    node.stop();
    let stored = stored_orders(&dir);
    report_pass(
        &mut report,
        &format!("empty book, {stored} stored orders after"),
        &small,
        None,
    );
    report_p2p(&mut report, &p2p);

    // Pass 2: the book filled to its size.
    let template = {
        let book = OrderBook::open(&node::database(&dir), std::sync::Arc::new(SystemClock))
            .expect("open the order book");
        book.order(&OrderId::parse(&order_id).unwrap())
            .unwrap()
            .expect("the probe order")
    };
    let seeded = seed::fill(&node::database(&dir), &template, options.book, options.live);
    println!(
        "# seeded {} orders ({} live) in {:.0} s",
        seeded.added,
        seeded.live,
        seeded.took.as_secs_f64()
    );
    let (node, startup) = runtime.block_on(BenchNode::start(&binary, &dir, ports));
    runtime.block_on(node.wait_taking_orders(&orders.sample));
    report.add(
        "start-up, spawn to serving",
        ms(startup),
        "< 2 s",
        Some(startup < Duration::from_secs(2)),
    );
    std::thread::sleep(Duration::from_secs(5));
    let idle_window = Duration::from_secs(20);
    let before = node.cpu_time();
    std::thread::sleep(idle_window);
    let idle = (node.cpu_time() - before).as_secs_f64() / idle_window.as_secs_f64();
    let stored = stored_orders_live(&dir);
    report.add(
        &format!("idle CPU ({stored})"),
        format!("{:.2}% of one core", idle * 100.0),
        "< 2%",
        Some(idle < 0.02),
    );
    let rss_idle = node.rss_mib();
    report.add(
        "RSS idle",
        format!("{rss_idle:.0} MiB"),
        "< 200 MiB",
        Some(rss_idle < 200.0),
    );
    // The first pass may have stored more than --book asks for.
    let stored = stored_orders(&dir);
    let big = measure_pass(&node, &hello_url, &orders, &order_id, &options);
    let rss_loaded = node.rss_mib();
    report_pass(
        &mut report,
        &format!("{stored} stored orders"),
        &big,
        Some(&small),
    );
    report.add(
        "RSS after the load",
        format!("{rss_loaded:.0} MiB"),
        "< 200 MiB",
        Some(rss_loaded < 200.0),
    );
    node.stop();
    report.print();
}

/// How many orders the book holds and how many of them are live, for the idle figure's label.
fn stored_orders_live(dir: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(node::database(dir)).expect("open the database");
    let live: u64 = conn
        .query_row(
            "SELECT COUNT(*) FROM lsps1_orders WHERE order_state = 'CREATED'",
            [],
            |row| row.get(0),
        )
        .expect("count live orders");
    format!("{} orders, {live} live", stored_orders(dir))
}
