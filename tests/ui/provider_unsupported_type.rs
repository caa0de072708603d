pub struct Point {
    pub x: i32,
}

#[usdt_runtime::provider]
mod app {
    pub fn numbers(values: Vec<u32>);
    pub fn point(at: &Point);
    pub fn unit(nothing: ());
}

fn main() {}
