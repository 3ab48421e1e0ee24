import { createApp } from "vue";
import urql from "@urql/vue";

import App from "./App.vue";
import { createCreditgraphClient } from "./client";
import { readConfig } from "./config";
import "./style.css";

const config = readConfig();
createApp(App, { config }).use(urql, createCreditgraphClient(config)).mount("#app");

// A new #api=...&token=... means another server or caller: start over with it.
window.addEventListener("hashchange", () => window.location.reload());
