// graphql-http's server audits (GraphQL over HTTP: MUST, SHOULD and MAY) against a running
// server. Usage: node audit.mjs http://127.0.0.1:8000/graphql
// Prints one line per audit and exits 1 unless every audit passed.
import { serverAudits } from "graphql-http";

const url = process.argv[2];
if (!url) {
  console.error("usage: node audit.mjs <graphql url>");
  process.exit(2);
}

let failed = 0;
const audits = serverAudits({ url, fetchFn: fetch });
// One at a time, so the output reads in the suite's order.
for (const audit of audits) {
  const result = await audit.fn();
  if (result.status === "ok") {
    console.log(`ok    ${result.id} ${result.name}`);
  } else {
    failed += 1;
    console.log(`${result.status.padEnd(5)} ${result.id} ${result.name}: ${result.reason}`);
  }
}
console.log(`${audits.length - failed} of ${audits.length} audits passed`);
process.exit(failed === 0 ? 0 : 1);
