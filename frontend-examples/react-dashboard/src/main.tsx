import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { Provider } from "urql";

import { App } from "./App";
import { makeClient } from "./client";
import { readConfig } from "./config";
import "./styles.css";

// The configuration is read once; a new #api=...&token=... starts the page afresh.
window.addEventListener("hashchange", () => window.location.reload());

const root = createRoot(document.getElementById("root")!);
const config = readConfig();
if (config === null) {
  root.render(
    <main className="setup">
      <h1>creditgraph billing console</h1>
      <p>
        No token configured. Open this page with <code>#api=&lt;GraphQL URL&gt;&amp;token=&lt;JWT&gt;</code>{" "}
        or set <code>VITE_CREDITGRAPH_TOKEN</code> (and <code>VITE_CREDITGRAPH_URL</code>) in <code>.env.local</code>; see the README.
      </p>
    </main>,
  );
} else {
  root.render(
    <StrictMode>
      <Provider value={makeClient(config)}>
        <App config={config} />
      </Provider>
    </StrictMode>,
  );
}
