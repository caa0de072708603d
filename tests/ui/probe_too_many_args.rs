use usdt_runtime::probe;

fn main() {
    probe!(app, thirteen, 1u8, 2u8, 3u8, 4u8, 5u8, 6u8, 7u8, 8u8, 9u8, 10u8, 11u8, 12u8, 13u8);
}
