#[usdt_runtime::provider]
mod app {
    pub fn with_body(id: u64) {}
    pub fn generic<T>(value: T);
    pub fn returns(id: u64) -> u64;
    pub async fn asynchronous(id: u64);
    pub fn pattern((a, b): (u8, u8));
    pub fn attribute(#[serde] id: u64);
    pub fn twice();
    pub fn twice();
}

#[usdt_runtime::provider]
fn not_a_module() {}

#[usdt_runtime::provider]
mod no_body;

fn main() {}
