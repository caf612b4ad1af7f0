set terminal pngcairo size 1000,650 noenhanced
set output 'scaling-last.png'
set logscale xy
set grid
set key top left
set yrange [45:*]
set xlabel 'rules (N)'
set ylabel 'CPU ns per packet (receiver)'
set title 'Firewall scaling, scenario last (median, min-max over pairs)'
set xrange [0.7:15000]
plot 'scaling-last.dat' index 0 using 1:2:3:4 with yerrorlines title 'sluice-ipt', \
     'scaling-last.dat' index 1 using 1:2:3:4 with yerrorlines title 'nft-set', \
     'scaling-last.dat' index 2 using 1:2:3:4 with yerrorlines title 'iptables-input', \
     76.3 with lines dt 3 title 'bare XDP drop (limit)'
