// A .wasm imported `with { type: "file" }`: Bun resolves it to a path it can read (inside a
// compiled executable, the copy embedded in it).
declare module "*.wasm" {
  const path: string;
  export default path;
}
