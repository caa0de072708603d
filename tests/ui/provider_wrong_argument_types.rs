#[usdt_runtime::provider]
mod http {
    pub fn request_done(id: u64, status: u16, path: &str);
    pub fn single(id: u64);
}

fn main() {
    http::request_done(|| (1, "200", "/"));
    http::request_done(|| (1, 200));
    http::request_done(|| (1, 200, 404));
    http::single(|| (1,));
}
