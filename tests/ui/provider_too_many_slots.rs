#[usdt_runtime::provider]
mod app {
    pub fn strings(a: &str, b: &str, c: &str, d: &str, e: &str, f: &str, g: &str);
    pub fn wide(a: u128, b: i128, c: u64, d: u64, e: u64, f: u64, g: u64, h: u64, i: u64, j: u64, k: u64);
}

fn main() {}
