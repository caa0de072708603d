use usdt_runtime::probe;

fn main() {
    probe!(café, opened);
    probe!(app, r#type);
    probe!(app, a_name_that_is_far_too_long_for_any_reasonable_tool_to_show_in_one_column);
}
