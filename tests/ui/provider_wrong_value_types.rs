use std::ffi::CStr;

#[derive(serde::Serialize)]
pub struct Order {
    pub id: u64,
}

#[usdt_runtime::provider]
mod shop {
    pub fn payload(data: &[u8]);
    pub fn label(text: &CStr);
    pub fn counted(count: &u32);
    pub fn placed(#[json] order: &Order);
}

fn main() {
    shop::payload(|| 42u32);
    shop::label(|| "not NUL-terminated");
    shop::counted(|| "seven");
    shop::placed(|| 1u64);
}
