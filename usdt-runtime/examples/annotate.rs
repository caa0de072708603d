//! The examples of the workspace README's "Annotate your code" section,
//! verbatim (a test checks that every Rust block there appears here), in a
//! program that runs them: `cargo run -p usdt-runtime --features serde
//! --example annotate`, then `readelf -n` on the binary lists its probes.

use usdt_runtime::probe;

fn checksum(data: &[u8]) -> u32 {
    let sum = data.iter().map(|&b| u32::from(b)).sum();
    probe!(storage, checksum, data, sum);
    sum
}

#[usdt_runtime::provider]
mod http {
    /// A request arrived.
    pub fn request_start(id: u64, method: &str, path: &str);
    /// A response went out.
    pub fn request_done(id: u64, status: u16, micros: u64);
}

fn handle(id: u64, method: &str, path: &str) -> u16 {
    http::request_start(|| (id, method, path));
    let status = 200;
    http::request_done(|| (id, status, 1250));
    if http::request_done::enabled() {
        // Work that only a tracer wants to see.
    }
    status
}

#[derive(serde::Serialize)]
struct Order {
    items: Vec<String>,
    total_cents: u64,
}

#[usdt_runtime::provider(name = "shop")]
mod shop_probes {
    use super::Order;

    pub fn order_placed(id: u64, #[json] order: &Order);
    pub fn note(text: &str);
}

fn place(id: u64, order: &Order) {
    shop_probes::order_placed(|| (id, order));
    // A String built only while the probe is traced.
    shop_probes::note(|| format!("order {id}: {} items", order.items.len()));
}

fn main() {
    println!("checksum {}", checksum(b"probe"));
    println!("status {}", handle(1, "GET", "/index.html"));
    let order = Order {
        items: vec!["tea".into(), "scones".into()],
        total_cents: 1250,
    };
    place(7, &order);
}
