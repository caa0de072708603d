use usdt_runtime::probe;

fn main() {
    // Seven strings are fourteen note arguments.
    let s = "text";
    probe!(app, strings, s, s, s, s, s, s, s);
}
