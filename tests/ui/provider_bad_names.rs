#[usdt_runtime::provider(name = "http-server")]
mod http {
    pub fn start();
}

#[usdt_runtime::provider]
mod café {
    pub fn start();
}

#[usdt_runtime::provider]
mod app {
    pub fn ünïcode();
    pub fn a_name_that_is_far_too_long_for_any_reasonable_tool_to_show_in_one_column();
}

#[usdt_runtime::provider(title = "app")]
mod options {
    pub fn start();
}

fn main() {}
