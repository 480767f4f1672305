use super::*;

#[test]
fn loadavg_first_field_is_the_one_minute_load() {
    assert_eq!(parse_loadavg("0.52 0.58 0.59 1/389 12345\n"), Some(0.52));
    assert_eq!(parse_loadavg(""), None);
    assert_eq!(parse_loadavg("x y"), None);
}

#[test]
fn cpu_load_is_a_fraction() {
    let load = cpu_load();
    assert!((0.0..=1.0).contains(&load));
}
