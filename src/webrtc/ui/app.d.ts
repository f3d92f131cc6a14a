// app.js is browser code served as a file; the server imports it as text (see ../ui.ts).
declare const source: string;
export default source;
