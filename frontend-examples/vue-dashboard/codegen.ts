import type { CodegenConfig } from "@graphql-codegen/cli";

// Offline: the schema is the repository's exported SDL; the documents are the shared
// dashboard contract plus this app's own operations. Money and times stay strings.
const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["../operations/dashboard.graphql", "src/operations.graphql"],
  ignoreNoDocuments: false,
  generates: {
    "src/gql/": {
      preset: "client",
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        scalars: {
          Credits: "string",
          Decimal: "string",
          BigInt: "string",
          DateTime: "string",
          JSON: "unknown",
        },
      },
      presetConfig: { fragmentMasking: false },
    },
  },
};

export default config;
