import {
  ArcElement,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  Tooltip,
} from "chart.js";

// Only what the two charts use, so the bundle carries no unused controllers.
Chart.register(ArcElement, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

export const PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];
