// Every kind of expression a function call takes is a `probe!` argument,
// borrowed where it is written: casts, arithmetic, unary operators, method
// and function calls, blocks, `if`, `match`, `loop`, macro calls, closures'
// results, references, indexing, comparisons, literals and `?`. The program
// compiles without warnings and runs; the tests crate's `probe_expressions`
// fixture is this file, traced to check each value (`expr:*` probes). The
// inputs come through `black_box` so that nothing is folded away.

use std::hint::black_box;
use usdt_runtime::probe;

#[deny(warnings)]
fn main() -> Result<(), std::num::ParseIntError> {
    let x = black_box(7i64);
    let flag = black_box(true);
    let name = black_box(String::from("probe"));
    let bytes = black_box(vec![1u8, 2, 3]);
    let pair = black_box((40u16, -2i8));
    let mut counter = black_box(5u32);
    let double = |v: i64| v * 2;
    let x_ref = &x;
    let mut steps = 0u16;

    probe!(expr, cast, x as u32, -x as i16, x as f64 / 2.0, x as u64 + 1);
    probe!(expr, arith, x + 1, x * 3 - 2, x << 2, x % 4, (x - 1) / 2);
    probe!(expr, unary, -x, !flag, -(x as i32), !0u8, *x_ref);
    probe!(expr, method, name.len(), name.as_str(), name.to_uppercase(), x.pow(2));
    probe!(expr, call, double(x), i64::abs(-x), u32::from(pair.0), String::from("called"));
    probe!(expr, block, { let y = x * 10; y + 1 }, if flag { 1u8 } else { 2 });
    probe!(
        expr,
        control,
        match x { 7 => "seven", _ => "other" },
        loop {
            steps += 2;
            if steps >= 6 {
                break steps;
            }
        }
    );
    probe!(expr, macros, format!("x={x}"), concat!("a", "b"), stringify!(x));
    probe!(expr, reference, &x, &name, &bytes[1..], &mut counter, &&flag);
    probe!(expr, index, bytes[0], pair.0, pair.1, [9u8, 8, 7], bytes.clone());
    probe!(expr, logic, x > 3, x == 7 && !flag, flag || x < 0);
    probe!(expr, literal, -1, 2.5, 'c', "lit", b"raw", 0x10u64);
    probe!(expr, question, "42".parse::<u32>()?, name.parse::<u8>().is_err());
    counter += 1;
    probe!(expr, after, counter);
    Ok(())
}
