# Tally's image: one image, the role is the command (npm start | npm run api | npm run ingest).
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY . .
ENV NODE_ENV=production HOST=0.0.0.0 DATA_DIR=/data
EXPOSE 8080
CMD ["npm", "start"]
