// API docs of the client library (`npm run docs:api`, checked in CI): every
// export must carry a doc comment (warnings are errors).
import { OptionDefaults } from "typedoc";

/** @type {Partial<import("typedoc").TypeDocOptions>} */
const config = {
  entryPoints: ["src/client/index.ts"],
  tsconfig: "tsconfig.build.json",
  out: "dist/api-docs",
  // protobuf-es marks generated types with @generated.
  blockTags: [...OptionDefaults.blockTags, "@generated"],
  validation: { notDocumented: true, invalidLink: true, notExported: true },
  // Every export and every method; fields are named for what they hold.
  requiredToBeDocumented: [
    "Enum",
    "Variable",
    "Function",
    "Class",
    "Interface",
    "TypeAlias",
    "Method",
    "Accessor",
  ],
  treatWarningsAsErrors: true,
  // Members marked @internal (e.g. constructors the client calls) are not API.
  excludeInternal: true,
  disableSources: true,
};

export default config;
