use usdt_runtime::probe;

struct Point {
    x: i32,
}

fn main() {
    let numbers = vec![1u32, 2, 3];
    probe!(app, numbers, numbers);
    let point = Point { x: 1 };
    probe!(app, point, point, point.x);
}
