#!/usr/bin/env bash
# Draws the benchmark plots (SVG, gnuplot) from the data files bench/report.py writes:
#   latency-cdf.svg    wakeup latency under CPU hogs (cyclictest), CDF per scheduler
#   ratios.svg         each workload's median as a ratio to EEVDF, per zernel policy
#   scaling-tasks.svg  dispatcher ns per decision vs. tasks, one line per vCPU count
#   scaling-cpus.svg   the same vs. vCPUs, one line per task count
# Usage: bench/plots.sh [DIR]   (default bench/results; needs gnuplot: apt-get install gnuplot-nox)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
d=$(cd "${1:-$top/bench/results}" && pwd)
command -v gnuplot >/dev/null || { echo "plots.sh: gnuplot not found; fix: apt-get install gnuplot-nox" >&2; exit 1; }
cd "$d"
# ZERNEL_PLOT_FORMAT=png draws PNGs instead (pngcairo), e.g. to look at them in a viewer.
ext=${ZERNEL_PLOT_FORMAT:-svg}
if [ "$ext" = png ]; then
  term='set terminal pngcairo size 800,480 enhanced font "sans,10" background rgb "white"'
else
  term='set terminal svg size 800,480 dynamic enhanced font "sans,12" background "white"'
fi

if ls cdf-*.dat >/dev/null 2>&1; then
  plot=""
  for s in eevdf fair fifo; do
    [ -f "cdf-$s.dat" ] && plot+="${plot:+, }'cdf-$s.dat' using 1:2 with steps lw 2 title '$s'"
  done
  gnuplot <<G
$term
set output 'latency-cdf.$ext'
set title 'Wakeup latency of a SCHED\_OTHER thread under stress-ng --cpu NCPU (cyclictest, all rounds)'
set xlabel 'latency (us, log scale)'
set ylabel 'fraction of wakeups <= x'
set logscale x
set yrange [0:1.02]
set grid
set key bottom right
plot $plot
G
fi

if [ -f ratios.dat ]; then
  gnuplot <<G
$term
set output 'ratios.$ext'
set title 'zernel / EEVDF (medians). Time metrics: lower is better; stress-ng ops/s: higher is better'
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set ylabel 'ratio to EEVDF'
set bmargin 4
set yrange [0:*]
set grid ytics
set key top left
plot 'ratios.dat' using 2:xtic(1) title 'fair', '' using 3 title 'fifo', \\
     1 with lines lc rgb 'black' dt 2 title 'EEVDF = 1', \\
     '' using 0:4 with points pt 7 ps 1.2 lc rgb 'red' title 'target'
G
fi

if [ -f scaling.dat ]; then
  ncol=$(awk '/^#/ { print NF - 2; exit }' scaling.dat)
  hdr=$(sed -n '1s/^# tasks //; 1s/  (.*//p' scaling.dat)
  plot=""; i=2
  for h in $hdr; do plot+="${plot:+, }'scaling.dat' using 1:$i with linespoints lw 2 pt 7 title '${h#ns_}'"; i=$((i+1)); done
  gnuplot <<G
$term
set output 'scaling-tasks.$ext'
set title 'Dispatcher CPU per decision vs. tasks (policy fair, TCG)'
set xlabel 'tasks (log scale)'
set ylabel 'ns of dispatcher CPU per decision'
set logscale x
set yrange [0:*]
set grid
plot $plot
G
  hdr=$(sed -n '1s/^# vcpus //p' scaling-cpus.dat)
  plot=""; i=2
  for h in $hdr; do plot+="${plot:+, }'scaling-cpus.dat' using 1:$i with linespoints lw 2 pt 7 title '${h#ns_}'"; i=$((i+1)); done
  gnuplot <<G
$term
set output 'scaling-cpus.$ext'
set title 'Dispatcher CPU per decision vs. vCPUs (policy fair, TCG, --tcg multi on 2 host cores)'
set xlabel 'vCPUs'
set ylabel 'ns of dispatcher CPU per decision'
set xtics (2, 4, 8)
set yrange [0:*]
set grid
plot $plot
G
fi
# Every plot must exist: gnuplot can exit 0 having written nothing for empty data.
for f in latency-cdf ratios scaling-tasks scaling-cpus; do
  [ -s "$d/$f.$ext" ] || { echo "plots.sh: $d/$f.$ext was not written; fix: check the .dat files next to it" >&2; exit 1; }
  echo "$d/$f.$ext"
done
