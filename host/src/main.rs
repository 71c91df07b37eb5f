fn main() {
    println!("bnas");
}
