fn main() { println!("xtask: see README"); }
