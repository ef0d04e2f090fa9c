# Shared by the bench scripts (sourced from the repository root): the muon binary, the guest
# component, and a one-function app around it.

TARGET=${CARGO_TARGET_DIR:-target}
MUON=${MUON:-$TARGET/release/muon}
[ -x "$MUON" ] || { echo "build muon first: cargo build --release -p muon"; exit 2; }
if [ -z "${WASM:-}" ]; then
  (cd guests && cargo build --quiet --release --target wasm32-wasip2 -p hello)
  WASM=$PWD/guests/target/wasm32-wasip2/release/hello.wasm
fi
WASM=$(realpath "$WASM")

# app DIR EXTRA_TOML: a muon app in DIR whose one function serves every path with $WASM
app() {
  mkdir -p "$1"
  printf 'app = "bench"\n[[function]]\nname = "hello"\nruntime = "wasm"\nsource = "%s"\nroute = "/..."\n%s\n' "$WASM" "$2" > "$1/muon.toml"
}
