import vue from "@vitejs/plugin-vue";
import { defineConfig } from "vite";

// base "./": the built dist/ works from any static host and path; the server it talks
// to comes from the page's hash or VITE_CREDITGRAPH_URL (src/config.ts).
export default defineConfig({
  base: "./",
  plugins: [vue()],
});
