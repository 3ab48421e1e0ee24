import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { Provider } from "urql";

import { App } from "./App";
import { makeClient } from "./client";
import { readConfig } from "./config";
import { signIn } from "./signin";
import "./styles.css";

// The configuration is read once; a new #api=...&token=... starts the page afresh.
window.addEventListener("hashchange", () => window.location.reload());

const root = createRoot(document.getElementById("root")!);

function render(refused: string | null): void {
  const config = readConfig();
  // A refused sign-in link says why and how to get a new one; a token this tab already
  // holds still opens the console beneath.
  const notice = refused && (
    <p className="error setup" role="alert">
      {refused}
    </p>
  );
  if (config === null) {
    root.render(
      <main className="setup">
        <h1>creditgraph billing console</h1>
        {notice}
        <p>
          No token configured. Open the sign-in link <code>creditgraph serve --demo</code> prints, open this page
          with <code>#api=&lt;GraphQL URL&gt;&amp;token=&lt;JWT&gt;</code> (a JWT from{" "}
          <code>creditgraph token --org SLUG --role owner</code>), or set <code>VITE_CREDITGRAPH_TOKEN</code> (and{" "}
          <code>VITE_CREDITGRAPH_URL</code>) in <code>.env.local</code>; see the README.
        </p>
      </main>,
    );
    return;
  }
  root.render(
    <StrictMode>
      {notice}
      <Provider value={makeClient(config)}>
        <App config={config} />
      </Provider>
    </StrictMode>,
  );
}

void signIn().then(render);
