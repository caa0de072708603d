use usdt_runtime::probe;

fn main() {
    let x = 7u64;
    probe!(app, mapped, x as u32, Some(3u8).map(|v| v + 1));
    probe!(app, tuple, (x, x), x + 1);
    probe!(app, range, 0..x);
}
