pub struct Opaque {
    pub secret: u64,
}

#[usdt_runtime::provider]
mod app {
    pub fn dumped(id: u64, #[json] value: &Opaque);
}

fn main() {}
