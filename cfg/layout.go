package cfg

// Box is a rectangle in the layout's coordinate space (pixels, y down).
type Box struct {
	X, Y, W, H float64
}

// Drawing places every block and every sub-program's cluster.
type Drawing struct {
	Blocks   []Box // by block id
	Funcs    []Box // by func id: the cluster around its blocks
	W, H     float64
	MaxRanks int // the deepest sub-program's number of layers
}

// Layout spacing, in pixels.
const (
	gapX    = 40
	gapY    = 36
	padding = 24
)

// Layout places the blocks of g in layers: a block sits one layer below
// the lowest of its predecessors reached by a forward edge (back edges of
// loops do not push it down), blocks of one layer side by side in
// instruction order, sub-programs stacked as clusters. size gives a block's
// width and height. It runs in time linear in blocks and edges, so that a
// program of a million instructions is laid out at once and a viewer can
// draw only the part in view.
func Layout(g *Graph, size func(Block) (w, h float64)) *Drawing {
	d := &Drawing{Blocks: make([]Box, len(g.Blocks)), Funcs: make([]Box, len(g.Funcs))}
	rank := make([]int, len(g.Blocks))
	// Forward predecessors per block (blocks are in instruction order).
	preds := make([][]int32, len(g.Blocks))
	for _, e := range g.Edges {
		if e.To != Exit && e.Kind != EdgeCall && e.To > e.From {
			preds[e.To] = append(preds[e.To], int32(e.From))
		}
	}
	y0 := float64(padding)
	for fi, f := range g.Funcs {
		maxRank := 0
		for _, b := range f.Blocks {
			r := 0
			for _, p := range preds[b] {
				if g.Blocks[p].Func == f.ID && rank[p]+1 > r {
					r = rank[p] + 1
				}
			}
			rank[b] = r
			maxRank = max(maxRank, r)
		}
		d.MaxRanks = max(d.MaxRanks, maxRank+1)
		// Heights of layers, then positions.
		layerH := make([]float64, maxRank+1)
		layerX := make([]float64, maxRank+1)
		for _, b := range f.Blocks {
			w, h := size(g.Blocks[b])
			d.Blocks[b] = Box{W: w, H: h}
			layerH[rank[b]] = max(layerH[rank[b]], h)
		}
		layerY := make([]float64, maxRank+1)
		y := y0 + padding
		for r := range layerH {
			layerY[r] = y
			y += layerH[r] + gapY
		}
		width := 0.0
		for _, b := range f.Blocks {
			r := rank[b]
			d.Blocks[b].X = padding*2 + layerX[r]
			d.Blocks[b].Y = layerY[r]
			layerX[r] += d.Blocks[b].W + gapX
			width = max(width, layerX[r])
		}
		d.Funcs[fi] = Box{X: padding, Y: y0, W: width + padding, H: y - y0}
		d.W = max(d.W, width+3*padding)
		y0 = y + padding
	}
	d.H = y0
	return d
}
