use std::fmt::Debug;

#[usdt_runtime::provider]
mod app {
    pub fn written(counter: &mut u64);
    pub fn anything(value: impl Debug);
}

fn main() {}
