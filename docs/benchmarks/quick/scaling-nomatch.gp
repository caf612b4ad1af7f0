set terminal pngcairo size 1000,650 noenhanced
set output 'scaling-nomatch.png'
set logscale xy
set grid
set key top left
set yrange [62:*]
set xlabel 'rules (N)'
set ylabel 'CPU ns per packet (receiver)'
set title 'Firewall scaling, scenario nomatch (median, min-max over pairs)'
set xrange [0.7:1500]
plot 'scaling-nomatch.dat' index 0 using 1:2:3:4 with yerrorlines title 'sluice', \
     189.2 with lines dt 2 title 'xdp-parse (limit)', \
     104.2 with lines dt 3 title 'bare XDP drop (limit)'
