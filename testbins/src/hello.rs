// rust-hello: std only, built with rustc directly.
fn main() {
    println!("hello from rust-hello");
}
