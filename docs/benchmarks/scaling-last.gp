set terminal pngcairo size 1000,650 noenhanced
set output 'scaling-last.png'
set logscale xy
set grid
set key top left
set yrange [57:*]
set xlabel 'rules (N)'
set ylabel 'CPU ns per packet (receiver)'
set title 'Firewall scaling, scenario last (median, min-max over pairs)'
set xrange [0.7:98304]
plot 'scaling-last.dat' index 0 using 1:2:3:4 with yerrorlines title 'sluice', \
     'scaling-last.dat' index 1 using 1:2:3:4 with yerrorlines title 'xdp-filter', \
     'scaling-last.dat' index 2 using 1:2:3:4 with yerrorlines title 'nft-set', \
     'scaling-last.dat' index 3 using 1:2:3:4 with yerrorlines title 'ipset', \
     'scaling-last.dat' index 4 using 1:2:3:4 with yerrorlines title 'iptables-raw', \
     'scaling-last.dat' index 5 using 1:2:3:4 with yerrorlines title 'iptables-input', \
     'scaling-last.dat' index 6 using 1:2:3:4 with yerrorlines title 'iptables-legacy', \
     'scaling-last.dat' index 7 using 1:2:3:4 with yerrorlines title 'nft-chain', \
     103.6 with lines dt 2 title 'xdp-parse (limit)', \
     97.0 with lines dt 3 title 'bare XDP drop (limit)'
