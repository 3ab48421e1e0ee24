import type { CodegenConfig } from "@graphql-codegen/cli";

// Offline: the schema is the repository's exported SDL; the documents are the shared
// dashboard contract (this app needs no operation beyond it).
const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["../operations/dashboard.graphql"],
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
          ID: "string",
        },
      },
      presetConfig: { fragmentMasking: false },
    },
  },
};

export default config;
