/**
 * The console's charts, drawn by recharts with axes, labels and tooltips: spend over time stacked by
 * a grouping, and a bar per category. The same components draw the static HTML cost report's charts
 * (src/report.tsx).
 */
import {
  Bar,
  BarChart,
  CartesianGrid,
  LabelList,
  Legend,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from 'recharts';
import { money } from './format.ts';

const COLOURS = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];

/** The colour of the i-th series. */
export const colour = (i: number) => COLOURS[i % COLOURS.length]!;

/** A bar chart in dollars: one bar per key, or the keys stacked; fixed `width` renders without a browser. */
function DollarBars({
  data,
  keys,
  stacked,
  width,
  height,
  labels,
}: {
  data: Record<string, number | string>[];
  keys: { key: string; name: string }[];
  stacked: boolean;
  width: number | undefined;
  height: number;
  /** Each bar's amount written over it (a printed page has no tooltip). */
  labels?: boolean | undefined;
}) {
  const chart = (
    <BarChart
      data={data}
      width={width ?? 0}
      height={height}
      margin={{ top: labels ? 24 : 8, right: 16, bottom: 8, left: 16 }}
    >
      <CartesianGrid strokeDasharray="3 3" vertical={false} />
      <XAxis dataKey="label" />
      <YAxis tickFormatter={(v: number) => money(v)} width={70} />
      <Tooltip formatter={(v) => money(Number(v))} isAnimationActive={false} />
      <Legend />
      {keys.map((k, i) => (
        <Bar
          key={k.key}
          dataKey={k.key}
          name={k.name}
          fill={colour(i)}
          isAnimationActive={false}
          {...(stacked ? { stackId: 'all' } : {})}
        >
          {labels ? <LabelList dataKey={k.key} position="top" formatter={(v) => money(Number(v))} /> : null}
        </Bar>
      ))}
    </BarChart>
  );
  return width ? (
    chart
  ) : (
    <ResponsiveContainer width="100%" height={height}>
      {chart}
    </ResponsiveContainer>
  );
}

/** Spend per bucket, stacked by series. */
export function StackedSpend({
  buckets,
  series,
  width,
  height = 280,
}: {
  buckets: { label: string; values: Record<string, number> }[];
  series: string[];
  width?: number;
  height?: number;
}) {
  return (
    <DollarBars
      data={buckets.map((b) => ({ label: b.label, ...b.values }))}
      keys={series.map((s) => ({ key: s, name: s }))}
      stacked
      width={width}
      height={height}
    />
  );
}

/** One bar per category and key (spend by GPU model, budget against actual). */
export function Bars({
  data,
  keys,
  width,
  height = 240,
  labels,
}: {
  data: { label: string; [k: string]: number | string }[];
  keys: { key: string; name: string }[];
  width?: number;
  height?: number;
  labels?: boolean;
}) {
  return <DollarBars data={data} keys={keys} stacked={false} width={width} height={height} labels={labels} />;
}
