set terminal pngcairo size 1000,650 noenhanced
set output 'scaling-nomatch.png'
set logscale xy
set grid
set key top left
set yrange [58:*]
set xlabel 'rules (N)'
set ylabel 'CPU ns per packet (receiver)'
set title 'Firewall scaling, scenario nomatch (median, min-max over pairs)'
set xrange [0.7:98304]
plot 'scaling-nomatch.dat' index 0 using 1:2:3:4 with yerrorlines title 'sluice', \
     'scaling-nomatch.dat' index 1 using 1:2:3:4 with yerrorlines title 'xdp-filter', \
     'scaling-nomatch.dat' index 2 using 1:2:3:4 with yerrorlines title 'iptables-raw', \
     'scaling-nomatch.dat' index 3 using 1:2:3:4 with yerrorlines title 'nft-chain', \
     103.6 with lines dt 2 title 'xdp-parse (limit)', \
     97.0 with lines dt 3 title 'bare XDP drop (limit)'
