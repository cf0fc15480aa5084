use super::*;

#[test]
fn explore() {
    for text in [
        "",
        "name: x\nfoo: 1\n",
        "name: x\nlayers:\n  - steps:\n      - copy: {src: a, dest: /b, srcs: 1}\n",
        "name: x\nlayers:\n  - steps:\n      - cpy: {src: a, dest: /b}\n",
        "name: x\nlayers:\n  - steps:\n      - copy: {src: a}\n",
        "name: x\nsource_date_epoch: abc\n",
        "name: x\nlayers: {}\n",
        "name: x\nlayers:\n  - steps:\n      - file: {path: /a, content: x, mode: 0755}\n",
        "name: [x\n",
        "name: x\nname: y\n",
    ] {
        match parse_str(text, Path::new("r.yaml"), Path::new(".")) {
            Ok(l) => println!("OK {:?}", l.recipe.layers),
            Err(e) => println!("{e}\n---"),
        }
    }
}
