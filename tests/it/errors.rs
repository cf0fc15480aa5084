//! Bad input: a clear error naming file, line, column and a hint; exit code 2; nothing
//! written.

use std::fs;

use crate::*;

fn bad_recipe(sb: &Sandbox, text: &str) -> (String, std::path::PathBuf) {
    let dir = sb.path("r");
    fs::create_dir_all(dir.join("files")).expect("mkdir");
    fs::write(dir.join("files/a"), "a\n").expect("write");
    let recipe = dir.join("bad.yaml");
    fs::write(&recipe, text).expect("write");
    let out = sb.path("out");
    let o = run(sb.strata().arg("build").arg(&recipe).arg("-o").arg(&out));
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    assert!(stdout(&o).is_empty());
    assert!(
        !out.exists(),
        "nothing may be written for an invalid recipe"
    );
    (stderr(&o), recipe)
}

#[test]
fn invalid_recipes_point_at_the_place() {
    let cases = [
        // (recipe, expected line:col, words the message must contain)
        ("name: x\nlayres: []\n", "2:1", "layres"),
        (
            "name: x\nlayers:\n  - steps:\n      - copy: {src: nope, dest: /x}\n",
            "4:21",
            "nope",
        ),
        (
            "name: x\nlayers:\n  - steps:\n      - copy: {src: ../etc, dest: /x}\n",
            "4:21",
            "..",
        ),
        (
            "name: x\nlayers:\n  - steps:\n      - copy: {src: /etc/passwd, dest: /x}\n",
            "4:21",
            "absolute",
        ),
        (
            "name: x\nlayers:\n  - steps:\n      - copi: {src: files/a, dest: /x}\n",
            "4:9",
            "copi",
        ),
        (
            "name: x\nlayers:\n  - steps:\n      - file: {path: /a, content: x, mode: \"999\"}\n",
            "4:44",
            "mode",
        ),
        (
            "name: x\nconfig:\n  exposed_ports: [\"http\"]\n",
            "3:19",
            "http",
        ),
        (
            "name: x\nplatform: linux/amd64\nplatforms: [linux/amd64, linux/arm64]\n",
            "3:12",
            "both `platform` and `platforms`",
        ),
        (
            "name: x\nplatforms: [linux/amd64, linux/amd64]\n",
            "2:26",
            "listed twice",
        ),
        ("name: x\nplatforms: [linux/amd64, windows]\n", "2:26", "windows"),
        ("name: x\nplatforms: []\n", "2:12", "empty"),
        (
            "name: x\nplatforms: [linux/amd64, linux/arm64]\nlayers:\n  - steps:\n      - python: {python: \"3.11\", platform: manylinux_2_36_x86_64, target: /usr/lib/python3/dist-packages, requirements: [a==1]}\n",
            "5:44",
            "names one wheel platform, but the recipe builds several `platforms`",
        ),
    ];
    for (text, pos, word) in cases {
        let sb = Sandbox::new();
        let (err, recipe) = bad_recipe(&sb, text);
        let at = format!("{}:{pos}", recipe.display());
        assert!(
            err.contains(&at),
            "expected {at} in:\n{err}\nfor recipe:\n{text}"
        );
        assert!(err.contains(word), "expected {word:?} in:\n{err}");
        assert!(err.contains("hint:"), "expected a hint in:\n{err}");
    }
}

#[test]
fn symlink_out_of_the_recipe_dir_is_refused() {
    let sb = Sandbox::new();
    let dir = sb.path("r");
    fs::create_dir_all(dir.join("files")).expect("mkdir");
    std::os::unix::fs::symlink("/etc/passwd", dir.join("files/leak")).expect("symlink");
    let recipe = dir.join("leak.yaml");
    fs::write(
        &recipe,
        "name: x\nlayers:\n  - steps:\n      - copy: {src: files/, dest: /x/}\n",
    )
    .expect("write");
    let o = run(sb
        .strata()
        .arg("build")
        .arg(&recipe)
        .arg("-o")
        .arg(sb.path("out")));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("leak"), "{}", stderr(&o));
    assert!(!sb.path("out").exists());
}

#[test]
fn failed_build_leaves_the_previous_layout_intact() {
    let sb = Sandbox::new();
    let out = sb.path("out");
    sb.build(&repo().join("recipes/hello.yaml"), &out, &[]);
    let before = fs::read(out.join("index.json")).expect("index");
    let dir = sb.path("r");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(
        dir.join("bad.yaml"),
        "name: x\nlayers:\n  - steps:\n      - copy: {src: missing, dest: /x}\n",
    )
    .expect("write");
    let o = run(sb
        .strata()
        .arg("build")
        .arg(dir.join("bad.yaml"))
        .arg("-o")
        .arg(&out));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(fs::read(out.join("index.json")).expect("index"), before);
    let o = run_ok(sb.strata().arg("verify").arg(&out));
    assert!(stdout(&o).contains(", 0 problems"));
}

#[test]
fn output_into_a_foreign_directory_is_refused() {
    let sb = Sandbox::new();
    let out = sb.path("precious");
    fs::create_dir_all(&out).expect("mkdir");
    fs::write(out.join("notes.txt"), "mine").expect("write");
    let o = run(sb
        .strata()
        .arg("build")
        .arg(repo().join("recipes/hello.yaml"))
        .arg("-o")
        .arg(&out));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("non-empty directory"), "{}", stderr(&o));
    assert_eq!(fs::read_dir(&out).expect("dir").count(), 1);
}
