// console.js and console.css are browser files served as they are; the server imports them as text (see ../console.ts).
declare module "*/console.js" {
  const source: string;
  export default source;
}
declare module "*.css" {
  const source: string;
  export default source;
}
