use usdt_runtime::probe;

fn main() {
    probe!(my-app, started);
    probe!(app, cache-miss, 1u32);
    probe!("app", started);
    probe!(app);
}
