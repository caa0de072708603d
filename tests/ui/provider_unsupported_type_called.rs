// An unsupported declared type is reported once, at the declaration, not
// again where the probe is called.
pub struct Point {
    pub x: i32,
}

#[usdt_runtime::provider]
mod app {
    pub fn numbers(values: Vec<u32>);
    pub fn point(at: &Point);
    pub fn pair(id: u64, at: Point);
}

fn main() {
    let point = Point { x: 1 };
    app::numbers(|| vec![1, 2]);
    app::numbers(|| Vec::new());
    app::point(|| &point);
    app::pair(|| (1, Point { x: point.x }));
}
